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
