//! Which rows an actor may see, as data: the authorization layer derives it
//! from the policy, and this module turns it into SQL for each table, so
//! lists, counts and nested lists leave invisible rows out in the database.

use crate::db::OrgCode;

/// One combination of visibility facts whose rows are visible, for the
/// listed owners (`None`: any owner).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisibleCombo {
    pub restricted: bool,
    pub marketing_objection: bool,
    pub in_sector: bool,
    pub erased: bool,
    pub sole_trader: bool,
    pub owners: Option<Vec<OrgCode>>,
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

fn sector_sql(column: &str) -> String {
    format!(
        "coalesce({column} ~ '^({})', false)",
        SECTOR_DIVISIONS.join("|")
    )
}

/// How each fact reads in one table's SQL.
pub(crate) struct FactColumns {
    pub restricted: &'static str,
    pub marketing_objection: &'static str,
    pub in_sector: String,
    pub erased: &'static str,
    pub sole_trader: &'static str,
    pub owner: &'static str,
}

impl FactColumns {
    pub fn companies() -> Self {
        FactColumns {
            restricted: "false",
            marketing_objection: "false",
            in_sector: sector_sql("companies.industry_code"),
            erased: "(companies.erased_at IS NOT NULL)",
            sole_trader: "(companies.company_form = 'SOLE_TRADER')",
            owner: "companies.registered_by",
        }
    }

    pub fn contacts() -> Self {
        FactColumns {
            restricted: "(contacts.restricted OR contacts.objection_pending)",
            marketing_objection: "contacts.marketing_objection",
            // Kept equal to the company's by the database (migration 000005).
            in_sector: "contacts.in_sector".to_owned(),
            erased: "(contacts.erased_at IS NOT NULL)",
            sole_trader: "false",
            owner: "contacts.registered_by",
        }
    }

    pub fn services() -> Self {
        FactColumns {
            restricted: "false",
            marketing_objection: "false",
            in_sector: "services.in_sector".to_owned(),
            erased: "false",
            sole_trader: "false",
            owner: "services.provider",
        }
    }

    pub fn confidential() -> Self {
        FactColumns {
            restricted: "false",
            marketing_objection: "false",
            in_sector: "company_confidential.in_sector".to_owned(),
            erased: "false",
            sole_trader: "false",
            owner: "company_confidential.registered_by",
        }
    }
}

impl Visible {
    /// The SQL condition. Built only from booleans and organisation codes
    /// (an enum), never from user input.
    pub(crate) fn sql(&self, cols: &FactColumns) -> String {
        let combos = match self {
            Visible::All => return "true".to_owned(),
            Visible::Any(c) if c.is_empty() => return "false".to_owned(),
            Visible::Any(c) => c,
        };
        let is = |expr: &str, value: bool| {
            if value {
                expr.to_owned()
            } else {
                format!("NOT {expr}")
            }
        };
        let terms: Vec<String> = combos
            .iter()
            .map(|c| {
                let mut parts = vec![
                    is(cols.restricted, c.restricted),
                    is(cols.marketing_objection, c.marketing_objection),
                    is(&cols.in_sector, c.in_sector),
                    is(cols.erased, c.erased),
                    is(cols.sole_trader, c.sole_trader),
                ];
                if let Some(owners) = &c.owners {
                    let list: Vec<String> =
                        owners.iter().map(|o| format!("'{}'", o.as_str())).collect();
                    parts.push(format!("{} IN ({})", cols.owner, list.join(", ")));
                }
                format!("({})", parts.join(" AND "))
            })
            .collect();
        format!("({})", terms.join(" OR "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_company_read_their_sector_from_a_column_not_a_sub_query() {
        for cols in [
            FactColumns::contacts(),
            FactColumns::services(),
            FactColumns::confidential(),
        ] {
            assert!(!cols.in_sector.contains("SELECT"), "{}", cols.in_sector);
        }
    }

    #[test]
    fn sector_is_the_recipients_divisions() {
        assert!(in_sector(Some("01110")) && in_sector(Some("10710")) && in_sector(Some("11050")));
        assert!(!in_sector(Some("12000")) && !in_sector(Some("62010")) && !in_sector(None));
    }

    #[test]
    fn sql_of_nothing_all_and_combos() {
        let cols = FactColumns::contacts();
        assert_eq!(Visible::All.sql(&cols), "true");
        assert_eq!(Visible::Any(vec![]).sql(&cols), "false");
        let one = Visible::Any(vec![VisibleCombo {
            restricted: false,
            marketing_objection: true,
            in_sector: false,
            erased: false,
            sole_trader: false,
            owners: Some(vec![OrgCode::Bf]),
        }]);
        let sql = one.sql(&cols);
        assert!(
            sql.contains("NOT (contacts.restricted OR contacts.objection_pending)")
                && sql.contains("contacts.registered_by IN ('BF')"),
            "{sql}"
        );
    }
}
