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
                .map_or(0, |fr| {
                    count_fields(&fr.node.selection_set.node, doc, depth + 1)
                }),
        })
        .sum()
}

/// Aliases anywhere in the document (fragments included), and root fields per operation.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<(), AppError> {
    let mut aliases: usize = doc
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum();
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
