//! Which rows an actor may see, as data: the authorization layer derives it
//! from the policy, and this module turns it into SQL for each table, so
//! lists, counts and nested lists leave invisible rows out in the database.

use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::db::schema::{
    companies, company_confidential, company_counts, contact_counts, contacts, service_counts,
    services,
};
use crate::db::{CompanyForm, OrgCode};

/// One combination of visibility facts whose rows are visible, for the
/// listed owners (`None`: any owner). A fact that is `None` does not matter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisibleCombo {
    pub restricted: Option<bool>,
    pub marketing_objection: Option<bool>,
    pub in_sector: Option<bool>,
    pub erased: Option<bool>,
    pub sole_trader: Option<bool>,
    pub owners: Option<Vec<OrgCode>>,
}

impl VisibleCombo {
    fn facts(&self) -> [Option<bool>; 5] {
        [self.restricted, self.marketing_objection, self.in_sector, self.erased, self.sole_trader]
    }

    fn with_facts(&self, f: [Option<bool>; 5]) -> Self {
        VisibleCombo {
            restricted: f[0],
            marketing_objection: f[1],
            in_sector: f[2],
            erased: f[3],
            sole_trader: f[4],
            owners: self.owners.clone(),
        }
    }
}

/// Merges combinations that differ in one fact only (same owners): that
/// fact does not matter there. What is visible is unchanged; the SQL gets
/// shorter, so the planner sees `NOT erased` instead of an OR of every
/// combination of the other facts, and can walk the keyset index.
pub fn simplify(mut combos: Vec<VisibleCombo>) -> Vec<VisibleCombo> {
    loop {
        let mut merged = None;
        'search: for (i, a) in combos.iter().enumerate() {
            for (j, b) in combos.iter().enumerate().skip(i + 1) {
                if a.owners != b.owners {
                    continue;
                }
                let (fa, fb) = (a.facts(), b.facts());
                let differ: Vec<usize> = (0..5).filter(|k| fa[*k] != fb[*k]).collect();
                if let [k] = differ[..] {
                    if fa[k].is_some() && fb[k].is_some() {
                        let mut f = fa;
                        f[k] = None;
                        merged = Some((i, j, a.with_facts(f)));
                        break 'search;
                    }
                }
            }
        }
        match merged {
            Some((i, j, m)) => {
                combos.remove(j);
                combos.remove(i);
                if !combos.contains(&m) {
                    combos.push(m);
                }
            }
            None => return combos,
        }
    }
}

/// The visible rows of one table: any of the combinations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Visible {
    /// Every row (internal work: locking a row a mutation then judges).
    All,
    Any(Vec<VisibleCombo>),
}

/// TOL 2008 divisions in the recipients' scope: agriculture, forestry and
/// fishing (01–03), food and beverages (10–11).
pub const SECTOR_DIVISIONS: [&str; 5] = ["01", "02", "03", "10", "11"];

pub fn in_sector(industry_code: Option<&str>) -> bool {
    industry_code.is_some_and(|c| SECTOR_DIVISIONS.iter().any(|d| c.starts_with(d)))
}

/// A table's visibility condition as a typed expression: values are bound
/// parameters, so the statement text depends only on the shape of the
/// condition and diesel keeps it prepared on each connection (an `sql()`
/// literal would make every read parsed and planned again).
pub type Condition<T> = Box<dyn BoxableExpression<T, Pg, SqlType = Bool>>;

/// The facts of a record, in the order of [`VisibleCombo`]'s fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Restricted,
    MarketingObjection,
    InSector,
    Erased,
    SoleTrader,
}

/// How each fact reads in one table; `None`: never true there (the fact
/// does not vary in that table, so no combination names it).
pub trait FactColumns: Table + Sized + 'static {
    fn fact(fact: Fact) -> Option<Condition<Self>>;
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self>;
}

diesel::define_sql_function! {
    /// The recipients' sector of an industry code (migration 000005, the
    /// same divisions as [`SECTOR_DIVISIONS`]); an immutable SQL function,
    /// inlined by the planner.
    fn industry_in_sector(code: Nullable<Text>) -> Bool;
}

impl FactColumns for companies::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::InSector => Some(Box::new(industry_in_sector(companies::industry_code))),
            Fact::Erased => Some(Box::new(companies::erased_at.is_not_null())),
            Fact::SoleTrader => Some(Box::new(companies::company_form.eq(CompanyForm::SoleTrader))),
            Fact::Restricted | Fact::MarketingObjection => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(companies::registered_by.eq_any(owners))
    }
}

impl FactColumns for contacts::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::Restricted => {
                Some(Box::new(contacts::restricted.or(contacts::objection_pending)))
            }
            Fact::MarketingObjection => Some(Box::new(contacts::marketing_objection)),
            // Kept equal to the company's by the database (migration 000005).
            Fact::InSector => Some(Box::new(contacts::in_sector)),
            Fact::Erased => Some(Box::new(contacts::erased_at.is_not_null())),
            Fact::SoleTrader => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(contacts::registered_by.eq_any(owners))
    }
}

impl FactColumns for services::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::InSector => Some(Box::new(services::in_sector)),
            _ => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(services::provider.eq_any(owners))
    }
}

impl FactColumns for company_confidential::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::InSector => Some(Box::new(company_confidential::in_sector)),
            _ => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(company_confidential::registered_by.eq_any(owners))
    }
}

// The visible-count tables (migration 000007) hold the same facts, computed
// by their triggers with the same expressions: the condition that selects an
// actor's rows selects the counts of those rows.
impl FactColumns for contact_counts::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::Restricted => {
                Some(Box::new(contact_counts::restricted.or(contact_counts::objection_pending)))
            }
            Fact::MarketingObjection => Some(Box::new(contact_counts::marketing_objection)),
            Fact::InSector => Some(Box::new(contact_counts::in_sector)),
            Fact::Erased => Some(Box::new(contact_counts::erased)),
            Fact::SoleTrader => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(contact_counts::registered_by.eq_any(owners))
    }
}

impl FactColumns for company_counts::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::InSector => Some(Box::new(company_counts::in_sector)),
            Fact::Erased => Some(Box::new(company_counts::erased)),
            Fact::SoleTrader => Some(Box::new(company_counts::sole_trader)),
            Fact::Restricted | Fact::MarketingObjection => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(company_counts::registered_by.eq_any(owners))
    }
}

impl FactColumns for service_counts::table {
    fn fact(fact: Fact) -> Option<Condition<Self>> {
        match fact {
            Fact::InSector => Some(Box::new(service_counts::in_sector)),
            _ => None,
        }
    }
    fn owner_in(owners: Vec<OrgCode>) -> Condition<Self> {
        Box::new(service_counts::provider.eq_any(owners))
    }
}

fn constant<T: FactColumns>(value: bool) -> Condition<T> {
    Box::new(value.into_sql::<Bool>())
}

impl Visible {
    /// The condition on table `T`: any of the combinations, each the AND of
    /// its facts and owners. Built only from booleans and organisation codes
    /// (an enum), never from user input.
    pub fn condition<T: FactColumns>(&self) -> Condition<T> {
        let combos = match self {
            Visible::All => return constant(true),
            Visible::Any(c) => c,
        };
        let term = |c: &VisibleCombo| -> Condition<T> {
            let facts = [
                (Fact::Restricted, c.restricted),
                (Fact::MarketingObjection, c.marketing_objection),
                (Fact::InSector, c.in_sector),
                (Fact::Erased, c.erased),
                (Fact::SoleTrader, c.sole_trader),
            ];
            let mut parts: Vec<Condition<T>> = Vec::new();
            for (fact, wanted) in facts {
                let Some(wanted) = wanted else { continue };
                match (T::fact(fact), wanted) {
                    (Some(e), true) => parts.push(e),
                    (Some(e), false) => parts.push(Box::new(diesel::dsl::not(e))),
                    // A fact never true here: wanting it true matches nothing.
                    (None, true) => return constant(false),
                    (None, false) => {}
                }
            }
            if let Some(owners) = &c.owners {
                parts.push(T::owner_in(owners.clone()));
            }
            parts.into_iter().reduce(|a, b| Box::new(a.and(b))).unwrap_or_else(|| constant(true))
        };
        combos.iter().map(term).reduce(|a, b| Box::new(a.or(b))).unwrap_or_else(|| constant(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of<T>(vis: &Visible) -> String
    where
        T: FactColumns + Default + diesel::query_dsl::methods::FilterDsl<Condition<T>>,
        diesel::dsl::Filter<T, Condition<T>>: diesel::query_builder::QueryFragment<Pg>,
    {
        let q = T::default().filter(vis.condition::<T>());
        diesel::debug_query::<Pg, _>(&q).to_string()
    }

    #[test]
    fn sector_is_the_recipients_divisions() {
        assert!(in_sector(Some("01110")) && in_sector(Some("10710")) && in_sector(Some("11050")));
        assert!(!in_sector(Some("12000")) && !in_sector(Some("62010")) && !in_sector(None));
    }

    #[test]
    fn conditions_bind_their_values_and_read_columns_not_sub_queries() {
        let one = Visible::Any(vec![VisibleCombo {
            restricted: Some(false),
            marketing_objection: Some(true),
            in_sector: Some(false),
            erased: Some(false),
            sole_trader: None,
            owners: Some(vec![OrgCode::Bf]),
        }]);
        let sql = sql_of::<contacts::table>(&one);
        assert!(
            sql.contains(r#"NOT (("contacts"."restricted" OR "contacts"."objection_pending"))"#)
                && sql.contains(r#""contacts"."registered_by" = ANY($1)"#)
                && sql.contains(r#"NOT ("contacts"."in_sector")"#)
                && !sql.contains("SELECT \"companies\""),
            "{sql}"
        );
        assert!(sql.contains("binds: [[Bf]]"), "{sql}");
        let company = Visible::Any(vec![VisibleCombo {
            restricted: None,
            marketing_objection: None,
            in_sector: Some(false),
            erased: Some(false),
            sole_trader: Some(true),
            owners: None,
        }]);
        let sql = sql_of::<companies::table>(&company);
        assert!(
            sql.contains(r#"NOT (industry_in_sector("companies"."industry_code"))"#)
                && sql.contains(r#""companies"."company_form" = $1"#),
            "{sql}"
        );
        // A fact that never holds in a table, wanted true, matches nothing.
        let sql = sql_of::<services::table>(&one);
        assert!(sql.contains("binds: [false]"), "{sql}");
    }

    #[test]
    fn nothing_and_everything() {
        assert!(sql_of::<contacts::table>(&Visible::All).contains("binds: [true]"));
        assert!(sql_of::<contacts::table>(&Visible::Any(vec![])).contains("binds: [false]"));
    }

    #[test]
    fn combinations_that_differ_in_one_fact_merge() {
        let c = |r: bool, e: bool| VisibleCombo {
            restricted: Some(r),
            marketing_objection: None,
            in_sector: None,
            erased: Some(e),
            sole_trader: None,
            owners: None,
        };
        // Visible whatever "restricted" is, when not erased: one term.
        let merged = simplify(vec![c(false, false), c(true, false)]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].restricted, None);
        assert_eq!(merged[0].erased, Some(false));
        // Every combination: no condition at all.
        let all = simplify(vec![c(false, false), c(true, false), c(false, true), c(true, true)]);
        assert_eq!(all.len(), 1);
        assert!(sql_of::<contacts::table>(&Visible::Any(all)).contains("binds: [true]"));
        // Different owners never merge.
        let mut a = c(false, false);
        a.owners = Some(vec![OrgCode::Tem]);
        assert_eq!(simplify(vec![a, c(true, false)]).len(), 2);
    }
}
