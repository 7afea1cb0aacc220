/// `schema.graphql` is what the server serves; regenerate with
/// `UPDATE_SCHEMA=1 cargo test schema_graphql` (or `kasvu-gateway schema`).
#[test]
fn schema_graphql_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = kasvu_gateway::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is stale: run `UPDATE_SCHEMA=1 cargo test schema_graphql_is_up_to_date`"
    );
}

#[test]
fn schema_has_every_contract_entry_point() {
    let sdl = kasvu_gateway::graphql::sdl();
    for entry in [
        "company(id: ID!): Company",
        "companyByBusinessId(businessId: String!): Company",
        "companies(filter: CompanyFilterInput, first: Int, after: String): CompanyConnection!",
        "contact(id: ID!): Contact",
        "contacts(filter: ContactFilterInput, first: Int, after: String): ContactConnection!",
        "service(id: ID!): Service",
        "services(filter: ServiceFilterInput, first: Int, after: String): ServiceConnection!",
        "dataSubjectRequest(id: ID!): DataSubjectRequest",
        "subjectAccessReport(contactId: ID!): SubjectAccessReport",
        "explainDecision(input: ExplainInput!): Decision!",
        "policyVersion: String!",
        "viewer: Viewer!",
    ] {
        assert!(sdl.contains(entry), "missing entry point: {entry}");
    }
}

/// Every field of every register type with its access, read from the
/// schema's registry (by introspection, not the SDL text) and the register's
/// declarations, against the committed `tests/field_access.snapshot`: an
/// access change is a reviewable diff. Regenerate with
/// `UPDATE_SNAPSHOTS=1 cargo test field_access`.
#[tokio::test]
async fn field_access_snapshot_is_current_and_every_field_is_declared() {
    use kasvu_gateway::register::{Access, ResourceKind};
    let schema =
        kasvu_gateway::graphql::schema_builder(&kasvu_gateway::config::Limits::default(), true)
            .finish();
    let res = schema.execute("{ __schema { types { name fields { name type { kind } } } } }").await;
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    let data = res.data.into_json().expect("json");
    let types = data["__schema"]["types"].as_array().expect("types");
    let mut lines = vec![
        "# Type.field => who reads it (docs/access.md classes). Generated from src/register.rs and the schema;".to_owned(),
        "# regenerate with UPDATE_SNAPSHOTS=1 cargo test field_access.".to_owned(),
    ];
    let mut problems = Vec::new();
    for kind in ResourceKind::ALL {
        if kind == ResourceKind::AuditEvent {
            continue; // the audit trail is judged as a whole (class audit, R10)
        }
        let type_name = kind.graphql_type();
        let t = types
            .iter()
            .find(|t| t["name"] == type_name)
            .unwrap_or_else(|| panic!("{type_name} in the schema"));
        let fields = t["fields"].as_array().expect("fields");
        for f in fields {
            let name = f["name"].as_str().expect("name");
            let nullable = f["type"]["kind"] != "NON_NULL";
            let access = match kind.field(name) {
                None => {
                    problems.push(format!("{type_name}.{name} has no declaration (it is denied)"));
                    "UNDECLARED: denied".to_owned()
                }
                Some(d) => {
                    let audited = |c: kasvu_gateway::register::FieldClass| {
                        if c.is_audited() {
                            ", audited"
                        } else {
                            ""
                        }
                    };
                    let personal = if d.personal { ", personal" } else { "" };
                    match d.access {
                        Access::Class(c) => format!("{}{}{personal}", c.as_str(), audited(c)),
                        Access::SoleTrader(c) => format!(
                            "{}; contact.identification, audited, for a sole trader{personal}",
                            c.as_str()
                        ),
                        Access::Open => "open (no one's data)".to_owned(),
                        Access::Rows => "rows (each judged as its own kind)".to_owned(),
                    }
                }
            };
            let guarded = kind
                .field(name)
                .is_some_and(|d| matches!(d.access, Access::Class(_) | Access::SoleTrader(_)));
            if guarded && !nullable {
                problems.push(format!("{type_name}.{name} can be denied but is non-null"));
            }
            lines.push(format!("{type_name}.{name} => {access}"));
        }
        // Every declared field is served, so the declaration holds no stale line.
        for d in kind.fields() {
            if let Some(g) = d.graphql {
                if !fields.iter().any(|f| f["name"] == g) {
                    problems.push(format!("{type_name}.{g} is declared but not in the schema"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let text = lines.join("\n") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/field_access.snapshot");
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(&path, &text).expect("write the snapshot");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "tests/field_access.snapshot is stale: review the access change, then run \
         `UPDATE_SNAPSHOTS=1 cargo test field_access`"
    );
}

/// The register's declared columns are the tables' columns: a column added
/// by a migration and not declared (not classed, not erased) fails here.
#[tokio::test]
async fn every_column_of_the_register_is_declared() {
    use kasvu_gateway::register::ResourceKind;
    let t = crate::support::TestApp::new().await;
    for kind in ResourceKind::ALL {
        if kind == ResourceKind::AuditEvent {
            continue;
        }
        let columns = t
            .sql_text(&format!(
                "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{}'",
                kind.table()
            ))
            .await;
        for c in columns.split(',') {
            assert!(
                kind.column(c).is_some(),
                "{}.{c} is not declared in src/register.rs",
                kind.table()
            );
        }
        for d in kind.fields() {
            if let Some(c) = d.column {
                assert!(
                    columns.split(',').any(|x| x == c),
                    "{:?} declares {c}, which {} does not have",
                    kind,
                    kind.table()
                );
            }
        }
    }
}
