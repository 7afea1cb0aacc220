//! Which rows an actor may see, as data: the authorization layer derives it
//! from the policy, and this module turns it into SQL for each table, so
//! lists, counts and nested lists leave invisible rows out in the database.

use crate::db::OrgCode;

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

fn sector_sql(column: &str) -> String {
    format!("coalesce({column} ~ '^({})', false)", SECTOR_DIVISIONS.join("|"))
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
        let is = |expr: &str, value: Option<bool>| match value {
            Some(true) => Some(expr.to_owned()),
            Some(false) => Some(format!("NOT {expr}")),
            None => None,
        };
        let terms: Vec<String> = combos
            .iter()
            .map(|c| {
                let mut parts: Vec<String> = [
                    is(cols.restricted, c.restricted),
                    is(cols.marketing_objection, c.marketing_objection),
                    is(&cols.in_sector, c.in_sector),
                    is(cols.erased, c.erased),
                    is(cols.sole_trader, c.sole_trader),
                ]
                .into_iter()
                .flatten()
                .collect();
                if let Some(owners) = &c.owners {
                    let list: Vec<String> =
                        owners.iter().map(|o| format!("'{}'", o.as_str())).collect();
                    parts.push(format!("{} IN ({})", cols.owner, list.join(", ")));
                }
                if parts.is_empty() {
                    "true".to_owned()
                } else {
                    format!("({})", parts.join(" AND "))
                }
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
        for cols in [FactColumns::contacts(), FactColumns::services(), FactColumns::confidential()]
        {
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
            restricted: Some(false),
            marketing_objection: Some(true),
            in_sector: Some(false),
            erased: Some(false),
            sole_trader: None,
            owners: Some(vec![OrgCode::Bf]),
        }]);
        let sql = one.sql(&cols);
        assert!(
            sql.contains("NOT (contacts.restricted OR contacts.objection_pending)")
                && sql.contains("contacts.registered_by IN ('BF')"),
            "{sql}"
        );
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
        assert_eq!(Visible::Any(all).sql(&FactColumns::contacts()), "(true)");
        // Different owners never merge.
        let mut a = c(false, false);
        a.owners = Some(vec![OrgCode::Tem]);
        assert_eq!(simplify(vec![a, c(true, false)]).len(), 2);
    }
}
