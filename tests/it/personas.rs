//! Every persona over the whole register through GraphQL, judged by a second,
//! hand-written reading of docs/access.md (not the policy engine): every value
//! returned must be allowed, and every FORBIDDEN must be a denial.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{personas, TestApp};
use kasvu_gateway::auth::{Actor, Claims, Purpose, Role};
use kasvu_gateway::db::OrgKind;

const PAGE: &str = r#"query($after: String) { companies(first: 100, after: $after) {
  pageInfo { hasNextPage endCursor }
  nodes { id businessId name companyForm industryCode municipality country website registeredBy legalBasis source
    lastProcessedAt legalHold createdAt updatedAt
    confidential { id registeredBy turnoverEur employeeCount riskRating fundingDecisions notes }
    services { id kind title provider status requestedAt deliveredAt invoicedAt legalBasis source amountEur notes }
    contacts { id firstName lastName email phone title roleInCompany homeCountry homeMunicipality postalAddress
      nickname nativeName nativeAddress nativeTitle workCountry industry investmentProfile expertiseLevel
      jobDescription otherDescription registeredBy legalBasis source restricted marketingObjection legalHold
      lastProcessedAt createdAt updatedAt } } } }"#;

/// What docs/access.md's rules need to know of a row.
#[derive(Debug, Clone, Default)]
struct Facts {
    owner: String,
    restricted: bool,
    marketing_objection: bool,
    sector: bool,
    erased: bool,
    sole_trader: bool,
    /// The company a contact, service or confidential row belongs to.
    company: String,
}

/// docs/access.md, read by hand.
struct Oracle<'a> {
    actor: &'a Actor,
}

impl Oracle<'_> {
    fn role(&self, r: Role) -> bool {
        self.actor.roles.contains(&r)
    }
    fn staff(&self) -> bool {
        [Role::Viewer, Role::Editor, Role::Confidential, Role::Dpo].iter().any(|r| self.role(*r))
    }
    fn recipient(&self) -> bool {
        self.actor.org.kind() == OrgKind::Recipient
    }
    fn refused(&self) -> bool {
        let abroad = !self.actor.in_eu_eea();
        (abroad && self.actor.org.as_str() != "BFOY")
            || (self.actor.purpose == Purpose::Marketing && (self.recipient() || abroad))
    }
    /// R5, R6, R7, R11, and R2 for other organisations' confidential rows.
    /// R9's DPO: a controller's, in the EU/EEA (recipients handle no requests).
    fn handles_requests(&self) -> bool {
        self.role(Role::Dpo) && !self.recipient() && self.actor.in_eu_eea()
    }
    /// R10, R7: who reads nothing of the register gets its root fields refused.
    fn reads_register(&self) -> bool {
        self.staff() && (self.actor.in_eu_eea() || self.actor.org.as_str() == "BFOY")
    }
    fn visible(&self, kind: &str, f: &Facts) -> bool {
        let dpo_request =
            self.handles_requests() && self.actor.purpose == Purpose::DataSubjectRequest;
        !(f.erased && !self.handles_requests()
            || kind == "contact" && f.restricted && !dpo_request
            || kind == "contact"
                && self.actor.purpose == Purpose::Marketing
                && (f.marketing_objection || f.restricted)
            || self.recipient() && !f.sector
            || kind == "confidential"
                && !(self.role(Role::Confidential)
                    && f.owner == self.actor.org.as_str()
                    && self.actor.in_eu_eea()))
    }
    fn readable(&self, class: &str, f: &Facts) -> bool {
        let personal = ["contact.identification", "contact.home", "contact.additional", "history"]
            .contains(&class);
        if f.erased && personal {
            return false;
        }
        let eu = self.actor.in_eu_eea();
        let controller = !self.recipient();
        let narrow =
            ["company.public", "contact.identification", "contact.processing", "service.record"]
                .contains(&class);
        let r1 = controller
            && self.staff()
            && eu
            && (narrow || ["contact.home", "contact.additional", "history"].contains(&class));
        let r2 = class == "company.confidential"
            && controller
            && self.role(Role::Confidential)
            && eu
            && f.owner == self.actor.org.as_str();
        let r3 = class == "service.internal"
            && controller
            && self.staff()
            && eu
            && f.owner == self.actor.org.as_str();
        let r7 = self.recipient() && self.staff() && eu && narrow;
        let r8 = !eu && self.actor.org.as_str() == "BFOY" && self.staff() && narrow;
        r1 || r2 || r3 || r7 || r8
    }
}

fn class_of(kind: &str, field: &str, sole_trader: bool) -> Option<&'static str> {
    Some(match (kind, field) {
        (_, "id") => return None,
        ("company", "name" | "businessId") if sole_trader => "contact.identification",
        ("company", "confidential" | "services" | "contacts") => return None,
        ("company", _) => "company.public",
        ("confidential", _) => "company.confidential",
        ("service", "amountEur" | "notes") => "service.internal",
        ("service", _) => "service.record",
        ("contact", "firstName" | "lastName" | "email" | "phone" | "title" | "roleInCompany") => {
            "contact.identification"
        }
        ("contact", "homeCountry" | "homeMunicipality" | "postalAddress") => "contact.home",
        (
            "contact",
            "nickname" | "nativeName" | "nativeAddress" | "nativeTitle" | "workCountry"
            | "industry" | "investmentProfile" | "expertiseLevel" | "jobDescription"
            | "otherDescription",
        ) => "contact.additional",
        ("contact", _) => "contact.processing",
        _ => return None,
    })
}

async fn facts(t: &TestApp) -> HashMap<String, (String, Facts)> {
    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        owner: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        restricted: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        marketing_objection: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        sector: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        erased: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        sole_trader: bool,
        #[diesel(sql_type = diesel::sql_types::Text)]
        company: String,
    }
    let sector = "coalesce(co.industry_code ~ '^(01|02|03|10|11)', false)";
    let sql = format!(
        "SELECT co.id::text, 'company' AS kind, co.registered_by AS owner, false AS restricted, false AS marketing_objection, {sector} AS sector, co.erased_at IS NOT NULL AS erased, co.company_form = 'SOLE_TRADER' AS sole_trader, co.id::text AS company FROM companies co
         UNION ALL SELECT c.id::text, 'contact', c.registered_by, c.restricted OR c.objection_pending, c.marketing_objection, {sector}, c.erased_at IS NOT NULL, false, co.id::text FROM contacts c JOIN companies co ON co.id = c.company_id
         UNION ALL SELECT s.id::text, 'service', s.provider, false, false, {sector}, false, false, co.id::text FROM services s JOIN companies co ON co.id = s.company_id
         UNION ALL SELECT cc.id::text, 'confidential', cc.registered_by, false, false, {sector}, false, false, co.id::text FROM company_confidential cc JOIN companies co ON co.id = cc.company_id"
    );
    let mut c = diesel_async::AsyncPgConnection::establish(&t.db_url).await.expect("connect");
    let rows: Vec<Row> = diesel::sql_query(sql).load(&mut c).await.expect("facts");
    rows.into_iter()
        .map(|r| {
            let f = Facts {
                owner: r.owner,
                restricted: r.restricted,
                marketing_objection: r.marketing_objection,
                sector: r.sector,
                erased: r.erased,
                sole_trader: r.sole_trader,
                company: r.company,
            };
            (r.id, (r.kind, f))
        })
        .collect()
}

/// Walks one object: its fields against the oracle, its nested lists for visibility.
fn check(
    oracle: &Oracle<'_>,
    all: &HashMap<String, (String, Facts)>,
    kind: &str,
    obj: &Value,
    path: &str,
    forbidden: &HashSet<String>,
    v: &mut Vec<String>,
) {
    let id = obj["id"].as_str().unwrap_or("");
    let Some((_, f)) = all.get(id) else {
        v.push(format!("{path}: unknown id {id}"));
        return;
    };
    if !oracle.visible(kind, f) {
        v.push(format!("{path}: {kind} {id} should be invisible"));
    }
    for (field, value) in obj.as_object().into_iter().flatten() {
        let Some(class) = class_of(kind, field, f.sole_trader) else {
            continue;
        };
        let at = format!("{path}.{field}");
        let allowed = oracle.readable(class, f);
        if !value.is_null() && !allowed {
            v.push(format!("{at}: {class} returned but not allowed"));
        }
        if forbidden.contains(&at) && allowed {
            v.push(format!("{at}: {class} withheld but allowed"));
        }
        if value.is_null() && allowed && forbidden.contains(&at) {
            v.push(format!("{at}: withheld"));
        }
    }
    for (list, child) in
        [("contacts", "contact"), ("services", "service"), ("confidential", "confidential")]
    {
        let Some(items) = obj.get(list).and_then(Value::as_array) else {
            continue;
        };
        let shown: HashSet<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
        for (i, item) in items.iter().enumerate() {
            check(oracle, all, child, item, &format!("{path}.{list}.{i}"), forbidden, v);
        }
        // Exactly the rows the oracle says are visible under this company.
        if kind == "company" {
            let expected: HashSet<&str> = all
                .iter()
                .filter(|(_, (k, g))| k == child && g.company == id && oracle.visible(child, g))
                .map(|(id, _)| id.as_str())
                .collect();
            if shown != expected {
                v.push(format!(
                    "{path}.{list}: {} shown, {} visible by docs/access.md",
                    shown.len(),
                    expected.len()
                ));
            }
        }
    }
}

#[tokio::test]
async fn every_persona_sees_exactly_what_access_md_allows_over_the_whole_register() {
    // Pages of 100 companies with everything nested cost more than the default limit allows.
    let t = TestApp::with(|c| c.limits.max_complexity = 1_000_000).await;
    let all = facts(&t).await;
    let mut violations = Vec::new();
    let mut checked = 0usize;
    for (name, actor) in personas() {
        let oracle = Oracle { actor: &actor };
        let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
        let token = t.token_with(Claims::new(
            &t.jwt,
            "persona",
            actor.org.as_str(),
            &roles,
            Some(&actor.country),
            std::time::Duration::from_secs(600),
        ));
        let mut after = Value::Null;
        let mut companies = 0;
        loop {
            let (status, body) =
                t.gql_for(&token, actor.purpose.as_str(), PAGE, json!({"after": after})).await;
            if oracle.refused() {
                assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
                break;
            }
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
            if !oracle.reads_register() {
                // One FORBIDDEN for the root field, no page of ids.
                assert_eq!(body["data"], Value::Null, "{name}: {body}");
                assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{name}: {body}");
                assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{name}: {body}");
                assert_eq!(body["errors"][0]["path"], json!(["companies"]), "{name}: {body}");
                break;
            }
            let forbidden: HashSet<String> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["extensions"]["code"] == "FORBIDDEN")
                .map(|e| {
                    e["path"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default()
                })
                .collect();
            let other: Vec<&Value> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["extensions"]["code"] != "FORBIDDEN")
                .collect();
            assert!(other.is_empty(), "{name}: {other:?}");
            let page = &body["data"]["companies"];
            for (i, c) in page["nodes"].as_array().expect("nodes").iter().enumerate() {
                check(
                    &oracle,
                    &all,
                    "company",
                    c,
                    &format!("companies.nodes.{i}"),
                    &forbidden,
                    &mut violations,
                );
                companies += 1;
            }
            checked += forbidden.len();
            if !page["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        if !oracle.refused() && oracle.reads_register() {
            let expected = all
                .values()
                .filter(|(k, f)| k == "company" && oracle.visible("company", f))
                .count();
            assert_eq!(companies, expected, "{name}: companies seen");
        }
    }
    assert!(checked > 1000, "only {checked} denials checked");
    assert!(
        violations.is_empty(),
        "{} violations, first: {:#?}",
        violations.len(),
        violations.iter().take(10).collect::<Vec<_>>()
    );
}
