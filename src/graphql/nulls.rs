//! Field errors as the GraphQL specification handles them ("Handling Field
//! Errors"): an errored field is present in its object as `null`, with its
//! error beside it; an error in a non-null field makes its nearest nullable
//! ancestor `null` instead.
//!
//! async-graphql 7.2 does neither: it leaves an errored field's key out of
//! its object and turns an object whose every field errored into `null`, even
//! at a non-null position. Relay and Apollo Client break on a missing key, and
//! a denied field must be visibly denied (docs/access.md). This extension wraps
//! every field's resolution and restores the specification's behaviour.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::{PathSegment, QueryPathNode, QueryPathSegment, Response, ServerResult, Value};

/// Installs [`NullOnError`] per request.
pub struct FieldErrors;

impl ExtensionFactory for FieldErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NullOnError::default())
    }
}

#[derive(Default)]
struct NullOnError {
    /// Errors of nullable fields, answered `null` here and reported at the end.
    caught: Mutex<Vec<async_graphql::ServerError>>,
    /// Paths of non-null fields that errored, waiting for the nearest nullable
    /// ancestor to become `null`.
    bubbles: Mutex<Vec<Vec<PathSegment>>>,
    /// `bubbles.len()`, read without the lock on every field.
    pending: AtomicUsize,
}

fn path_of(node: &QueryPathNode<'_>) -> Vec<PathSegment> {
    let mut path = Vec::new();
    let mut at = Some(node);
    while let Some(n) = at {
        path.push(match n.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(i) => PathSegment::Index(i),
        });
        at = n.parent;
    }
    path.reverse();
    path
}

/// `[T]` or `[T]!` with nullable items: the index of an item to null.
fn nullable_items(return_type: &str) -> bool {
    let t = return_type.strip_suffix('!').unwrap_or(return_type);
    t.starts_with('[') && t.ends_with(']') && !t[..t.len() - 1].ends_with('!')
}

impl NullOnError {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for NullOnError {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        response.errors.extend(Self::lock(&self.caught).drain(..));
        // A non-null root field errored: there is no nullable ancestor left.
        if !Self::lock(&self.bubbles).is_empty() {
            response.data = Value::Null;
        }
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let nullable = !info.return_type.ends_with('!');
        let return_type = info.return_type;
        let node = info.path_node;
        match next.run(ctx, info).await {
            Err(e) if nullable => {
                Self::lock(&self.caught).push(e);
                Ok(Some(Value::Null))
            }
            Err(e) => {
                Self::lock(&self.bubbles).push(path_of(node));
                self.pending.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Ok(value) if self.pending.load(Ordering::Relaxed) == 0 => Ok(value),
            Ok(mut value) => {
                let here = path_of(node);
                let mut bubbles = Self::lock(&self.bubbles);
                let below = |b: &Vec<PathSegment>| b.len() > here.len() && b.starts_with(&here);
                if !bubbles.iter().any(below) {
                    return Ok(value);
                }
                if nullable {
                    bubbles.retain(|b| !below(b));
                    self.pending.store(bubbles.len(), Ordering::Relaxed);
                    return Ok(Some(Value::Null));
                }
                if nullable_items(return_type) {
                    if let Some(Value::List(items)) = value.as_mut() {
                        bubbles.retain(|b| {
                            if !below(b) {
                                return true;
                            }
                            match b.get(here.len()) {
                                Some(PathSegment::Index(i)) if *i < items.len() => {
                                    items[*i] = Value::Null;
                                    false
                                }
                                _ => true,
                            }
                        });
                        self.pending.store(bubbles.len(), Ordering::Relaxed);
                    }
                }
                // Still non-null here: the error bubbles on to an ancestor.
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};

    struct Person;

    #[Object]
    impl Person {
        async fn name(&self) -> Option<String> {
            Some("A".into())
        }
        async fn secret(&self) -> async_graphql::Result<Option<String>> {
            Err("denied".into())
        }
        async fn id(&self) -> async_graphql::Result<String> {
            Err("no id".into())
        }
    }

    #[derive(SimpleObject)]
    struct Wrapper {
        people: Vec<Person>,
        maybe: Vec<Option<Person>>,
    }

    struct Query;

    #[Object]
    impl Query {
        async fn person(&self) -> Option<Person> {
            Some(Person)
        }
        async fn people(&self) -> Vec<Person> {
            vec![Person, Person]
        }
        async fn wrapper(&self) -> Option<Wrapper> {
            Some(Wrapper { people: vec![Person], maybe: vec![Some(Person), Some(Person)] })
        }
        async fn required(&self) -> async_graphql::Result<String> {
            Err("required failed".into())
        }
    }

    async fn run(query: &str) -> serde_json::Value {
        let schema =
            Schema::build(Query, EmptyMutation, EmptySubscription).extension(FieldErrors).finish();
        serde_json::to_value(schema.execute(query).await).expect("json")
    }

    #[tokio::test]
    async fn an_errored_nullable_field_is_present_as_null() {
        let r = run("{ person { name secret } }").await;
        assert_eq!(r["data"], serde_json::json!({ "person": { "name": "A", "secret": null } }));
        assert_eq!(r["errors"][0]["path"], serde_json::json!(["person", "secret"]));
    }

    #[tokio::test]
    async fn an_object_whose_every_field_errored_keeps_its_keys() {
        let r = run("{ people { secret } }").await;
        assert_eq!(
            r["data"],
            serde_json::json!({ "people": [{ "secret": null }, { "secret": null }] })
        );
        assert_eq!(r["errors"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn a_non_null_error_nulls_the_nearest_nullable_ancestor() {
        // person is nullable: it becomes null.
        let r = run("{ person { name id } }").await;
        assert_eq!(r["data"], serde_json::json!({ "person": null }));
        // [Person!]! up to a nullable wrapper: the wrapper becomes null.
        let r = run("{ wrapper { people { id } } }").await;
        assert_eq!(r["data"], serde_json::json!({ "wrapper": null }));
        // [Person]!: only the item becomes null.
        let r = run("{ wrapper { maybe { id name } } }").await;
        assert_eq!(r["data"], serde_json::json!({ "wrapper": { "maybe": [null, null] } }));
        // Non-null to the root: data is null, the error stays.
        let r = run("{ person { name } required }").await;
        assert_eq!(r["data"], serde_json::Value::Null);
        assert_eq!(r["errors"][0]["path"], serde_json::json!(["required"]));
    }
}
