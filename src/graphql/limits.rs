//! Limits async-graphql does not enforce itself: aliases and root fields.
//! Checked on the parsed document before execution.

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};

use crate::config::Limits;
use crate::error::AppError;

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(fr) => count_aliases(&fr.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn count_fields(set: &SelectionSet, doc: &ExecutableDocument, depth: usize) -> usize {
    if depth > 8 {
        return 0; // fragment cycles are rejected by validation; bound the walk anyway
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(fr) => {
                count_fields(&fr.node.selection_set.node, doc, depth + 1)
            }
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(0, |fr| count_fields(&fr.node.selection_set.node, doc, depth + 1)),
        })
        .sum()
}

/// Aliases anywhere in the document (fragments included), and root fields per operation.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<(), AppError> {
    let mut aliases: usize =
        doc.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum();
    for (_, op) in doc.operations.iter() {
        aliases += count_aliases(&op.node.selection_set.node);
        let roots = count_fields(&op.node.selection_set.node, doc, 0);
        if roots > limits.max_root_fields {
            return Err(AppError::QueryTooComplex(format!(
                "{roots} root fields; at most {} are allowed",
                limits.max_root_fields
            )));
        }
    }
    if aliases > limits.max_aliases {
        return Err(AppError::QueryTooComplex(format!(
            "{aliases} aliases; at most {} are allowed",
            limits.max_aliases
        )));
    }
    Ok(())
}

/// The type of the operation a request would run.
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// The name of the document's only operation, for metrics when the client
/// sent no `operationName`.
pub fn sole_operation_name(doc: &ExecutableDocument) -> Option<String> {
    let mut ops = doc.operations.iter();
    match (ops.next(), ops.next()) {
        (Some((name, _)), None) => name.map(|n| n.to_string()),
        _ => None,
    }
}

/// How deeply brackets, braces and parentheses may nest in a document or in
/// a JSON body. The GraphQL parser and the JSON deserializer recurse, so a
/// few kilobytes of `[[[[…` would overflow a worker's stack and abort the
/// process; this bound is checked on the raw text, before either runs. Real
/// queries nest a dozen levels (the depth limit) plus a few for arguments.
pub const MAX_NESTING: usize = 32;

/// The deepest nesting of `{`, `[` and `(` in `text` outside strings and
/// comments, scanned without recursion; stops counting past `limit`.
/// Works for GraphQL documents and for JSON (whose strings are a subset).
pub fn nesting_depth(text: &str, limit: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'#' => {
                // A GraphQL comment runs to the end of the line.
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                // A block string ends at the next unescaped `"""`.
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Refuses text nested deeper than [`MAX_NESTING`] (`what` names it).
pub fn check_nesting(what: &str, text: &str) -> Result<(), AppError> {
    let depth = nesting_depth(text, MAX_NESTING);
    if depth > MAX_NESTING {
        return Err(AppError::QueryTooComplex(format!(
            "{what} nests more than {MAX_NESTING} levels of brackets, braces or parentheses; at most {MAX_NESTING} are allowed"
        )));
    }
    Ok(())
}

/// Bounds on the strings a request passes in, checked on the document's
/// arguments and the variables before execution: a megabyte filter string
/// would hold a pooled connection for a whole statement timeout, and a NUL
/// byte is something PostgreSQL cannot store or compare.
pub fn check_inputs(
    doc: &ExecutableDocument,
    variables: &async_graphql::Variables,
    limits: &Limits,
) -> Result<(), AppError> {
    use async_graphql::parser::types::Selection;
    use async_graphql_value::Value;
    use std::collections::HashMap;

    // Where each variable is used, so its error names the argument.
    let mut used_at: HashMap<String, String> = HashMap::new();
    let mut sets: Vec<&SelectionSet> =
        doc.fragments.values().map(|f| &f.node.selection_set.node).collect();
    sets.extend(doc.operations.iter().map(|(_, op)| &op.node.selection_set.node));
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (name, value) in &f.node.arguments {
                        walk_arg(&value.node, name.node.to_string(), limits, &mut used_at)?;
                    }
                    sets.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(fr) => sets.push(&fr.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    for (name, value) in variables.iter() {
        let path = used_at.get(name.as_str()).cloned().unwrap_or_else(|| format!("${name}"));
        walk_const(value, path, limits)?;
    }
    return Ok(());

    fn walk_arg(
        value: &Value,
        path: String,
        limits: &Limits,
        used_at: &mut HashMap<String, String>,
    ) -> Result<(), AppError> {
        match value {
            Value::Variable(v) => {
                used_at.entry(v.to_string()).or_insert(path);
            }
            Value::String(s) => check_string(s, &path, limits)?,
            Value::List(items) => {
                for v in items {
                    walk_arg(v, path.clone(), limits, used_at)?;
                }
            }
            Value::Object(fields) => {
                for (k, v) in fields {
                    walk_arg(v, format!("{path}.{k}"), limits, used_at)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn walk_const(
        value: &async_graphql::Value,
        path: String,
        limits: &Limits,
    ) -> Result<(), AppError> {
        use async_graphql::Value as ConstValue;
        match value {
            ConstValue::String(s) => check_string(s, &path, limits)?,
            ConstValue::List(items) => {
                for v in items {
                    walk_const(v, path.clone(), limits)?;
                }
            }
            ConstValue::Object(fields) => {
                for (k, v) in fields {
                    walk_const(v, format!("{path}.{k}"), limits)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One string argument: at most `max_string_chars` characters (filters:
/// `max_filter_chars`, they become search patterns), and no NUL.
fn check_string(s: &str, path: &str, limits: &Limits) -> Result<(), AppError> {
    let max = if path == "filter" || path.starts_with("filter.") {
        limits.max_filter_chars
    } else {
        limits.max_string_chars
    };
    // Bytes bound characters from above: count only when it could matter.
    if s.len() > max && s.chars().count() > max {
        return Err(AppError::bad_input(path, format!("is longer than {max} characters")));
    }
    if s.contains('\0') {
        return Err(AppError::bad_input(path, "contains a NUL character"));
    }
    Ok(())
}

/// Depth and complexity, enforced after validation has computed them, so
/// the refusal says the limit and the value found (async-graphql's own
/// limits say neither).
pub struct DepthAndComplexity {
    pub max_depth: usize,
    pub max_complexity: usize,
}

impl async_graphql::extensions::ExtensionFactory for DepthAndComplexity {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(DepthAndComplexityCheck {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            introspection_only: Default::default(),
        })
    }
}

/// One request's check.
struct DepthAndComplexityCheck {
    max_depth: usize,
    max_complexity: usize,
    /// The document asks only `__schema`/`__type`/`__typename`: the schema
    /// itself, whose type references GraphiQL's standard query follows 15
    /// levels down. It reads no row, so the depth limit does not bind it
    /// (complexity still does); introspection is off unless GraphiQL is on.
    introspection_only: std::sync::atomic::AtomicBool,
}

fn only_introspection(doc: &ExecutableDocument) -> bool {
    doc.operations.iter().all(|(_, op)| {
        op.node.selection_set.node.items.iter().all(|item| match &item.node {
            Selection::Field(f) => f.node.name.node.starts_with("__"),
            _ => false,
        })
    })
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for DepthAndComplexityCheck {
    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        self.introspection_only
            .store(only_introspection(&doc), std::sync::atomic::Ordering::Relaxed);
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        let found = next.run(ctx).await?;
        let refuse = |message: String| {
            let mut e = async_graphql::ServerError::new(message, None);
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", crate::error::ErrorCode::QueryTooComplex.as_str());
            Err(vec![e])
        };
        let introspection = self.introspection_only.load(std::sync::atomic::Ordering::Relaxed);
        if found.depth > self.max_depth && !introspection {
            return refuse(format!(
                "the query is nested {} levels deep; at most {} are allowed",
                found.depth, self.max_depth
            ));
        }
        if found.complexity > self.max_complexity {
            return refuse(format!(
                "the query's complexity is {} (a list costs its page size times its nodes); at most {} is allowed",
                found.complexity, self.max_complexity
            ));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(nesting_depth("{ a(b: [1, {c: 2}]) { d } }", 99), 4);
        assert_eq!(nesting_depth(r#"{ a(s: "[[[[{{{{") }"#, 99), 2);
        assert_eq!(nesting_depth("{ a # [[[[[[\n }", 99), 1);
        assert_eq!(nesting_depth(r#"{ a(s: """ [[[[ \""" [[[ """) }"#, 99), 2);
        assert_eq!(nesting_depth(r#"{"q": "{{{{\"[[[", "v": {"a": [1]}}"#, 99), 3);
        // Unbalanced or truncated input never panics and still counts.
        assert_eq!(nesting_depth("]]]}}}{", 99), 1);
        assert_eq!(nesting_depth("\"unterminated", 99), 0);
        assert_eq!(nesting_depth("\"\"\"", 99), 0);
    }

    #[test]
    fn nesting_stops_at_the_limit_however_long_the_text() {
        let deep =
            format!("{{ companies(first: {}1{}) }}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(nesting_depth(&deep, MAX_NESTING), MAX_NESTING + 1);
        assert!(check_nesting("the query", &deep).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert!(check_nesting("the query", &ok).is_ok());
    }
}
