//! The deterministic demo register (`seed --scale N`). Ids and contents depend
//! only on the scale; timestamps are offsets from the time of seeding, so the
//! five-year cases stay five years old whenever the demo is loaded.

use std::time::Instant;

use crate::register::ResourceKind;
use bigdecimal::BigDecimal;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{companies, company_confidential, contacts, data_subject_requests, services};
use super::{
    CompanyForm, DataSource, LegalBasis, OrgCode, RequestKind, RequestStatus, ServiceKind,
    ServiceStatus,
};
use crate::validate::business_id_check_digit;

/// SplitMix64: tiny, fast and stable forever (unlike a library RNG whose
/// stream may change between versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(1000) < percent * 10
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            (u128::from(self.next()) << 64 | u128::from(self.next())).to_be_bytes(),
        )
        .into_uuid()
    }
    fn days_ago(&mut self, now: DateTime<Utc>, min: i64, max: i64) -> DateTime<Utc> {
        now - Duration::days(min + self.below((max - min) as u64) as i64)
            - Duration::seconds(self.below(86_400) as i64)
    }
}

const FIRST: &[&str] = &[
    "Aino", "Eero", "Helmi", "Juha", "Kaisa", "Lauri", "Maria", "Mikko", "Noora", "Olli", "Päivi",
    "Sami", "Tiina", "Ville", "Anna", "Jukka", "Elina", "Timo", "Satu", "Antti", "Leena", "Pekka",
    "Hanna", "Jari", "Sofia", "Erik", "Ingrid", "Lars",
];
const LAST: &[&str] = &[
    "Korhonen",
    "Virtanen",
    "Mäkinen",
    "Nieminen",
    "Mäkelä",
    "Hämäläinen",
    "Laine",
    "Heikkinen",
    "Koskinen",
    "Järvinen",
    "Lehtonen",
    "Lehtinen",
    "Saarinen",
    "Salminen",
    "Heinonen",
    "Niemi",
    "Heikkilä",
    "Kinnunen",
    "Salonen",
    "Turunen",
    "Lindqvist",
    "Andersson",
];
const PREFIX: &[&str] = &[
    "Pohjan", "Järvi", "Koivu", "Kallio", "Metsä", "Revon", "Aalto", "Saimaan", "Lapin", "Meri",
    "Tunturi", "Kuusi", "Vaskin", "Hopea", "Kivi", "Ranta",
];
const SUFFIX: &[&str] = &[
    "tekniikka",
    "palvelu",
    "tuote",
    "data",
    "rakennus",
    "kone",
    "design",
    "logistiikka",
    "energia",
    "systems",
    "solutions",
    "consulting",
];
const FOOD: &[&str] =
    &["tila", "leipomo", "meijeri", "kalastus", "puutarha", "mylly", "panimo", "metsä"];
const MUNICIPALITIES: &[&str] = &[
    "Helsinki",
    "Espoo",
    "Tampere",
    "Vantaa",
    "Oulu",
    "Turku",
    "Jyväskylä",
    "Kuopio",
    "Lahti",
    "Pori",
    "Joensuu",
    "Lappeenranta",
    "Vaasa",
    "Seinäjoki",
    "Rovaniemi",
    "Mikkeli",
    "Kotka",
    "Salo",
    "Porvoo",
    "Kokkola",
    "Hyvinkää",
    "Inari",
    "Kaskinen",
    "Maarianhamina",
];
/// Agriculture, forestry, fishing (01–03) and food and beverages (10–11): the recipients' scope.
const SECTOR_CODES: &[&str] = &[
    "01110", "01130", "01410", "01500", "02100", "02200", "03110", "03220", "10110", "10710",
    "10510", "10890", "11050", "11070",
];
const OTHER_CODES: &[&str] = &[
    "62010", "62020", "70220", "71121", "41200", "43210", "46900", "47190", "25620", "28290",
    "56101", "68201", "72190", "73110", "85590", "26110",
];
const TITLES: &[&str] = &[
    "toimitusjohtaja",
    "CEO",
    "talousjohtaja",
    "myyntipäällikkö",
    "hallituksen puheenjohtaja",
    "tuotantopäällikkö",
    "yrittäjä",
    "CTO",
];
const ROLES: &[&str] = &["vastuuhenkilö", "yhteyshenkilö", "omistaja", "hallituksen jäsen"];
const COUNTRIES_ABROAD: &[&str] = &["SE", "EE", "DE", "US", "CN", "JP", "GB", "NO"];
const EXPERTISE: &[&str] = &["beginner", "intermediate", "expert"];

const LEGAL: &[LegalBasis] = &[
    LegalBasis::PublicInterest,
    LegalBasis::LegitimateInterest,
    LegalBasis::Contract,
    LegalBasis::LegalObligation,
];
const SOURCES: &[DataSource] = &[
    DataSource::NationalResource,
    DataSource::DataSubject,
    DataSource::EventThirdParty,
    DataSource::PublicSource,
];
const FORMS: &[CompanyForm] = &[
    CompanyForm::LimitedCompany,
    CompanyForm::LimitedCompany,
    CompanyForm::LimitedCompany,
    CompanyForm::LimitedCompany,
    CompanyForm::LimitedCompany,
    CompanyForm::PublicLimitedCompany,
    CompanyForm::Partnership,
    CompanyForm::LimitedPartnership,
    CompanyForm::Cooperative,
    CompanyForm::Foreign,
    CompanyForm::Other,
];

#[derive(Insertable)]
#[diesel(table_name = companies)]
struct SeedCompany {
    id: Uuid,
    business_id: String,
    name: String,
    company_form: CompanyForm,
    industry_code: Option<String>,
    municipality: Option<String>,
    country: String,
    website: Option<String>,
    registered_by: OrgCode,
    legal_basis: LegalBasis,
    source: DataSource,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_processed_at: DateTime<Utc>,
    legal_hold: bool,
    legal_hold_reason: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = company_confidential)]
struct SeedConfidential {
    id: Uuid,
    company_id: Uuid,
    registered_by: OrgCode,
    turnover_eur: Option<BigDecimal>,
    employee_count: Option<i32>,
    risk_rating: Option<String>,
    funding_decisions: Option<String>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = contacts)]
struct SeedContact {
    id: Uuid,
    company_id: Uuid,
    first_name: Option<String>,
    last_name: Option<String>,
    home_country: Option<String>,
    home_municipality: Option<String>,
    postal_address: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    title: Option<String>,
    role_in_company: Option<String>,
    nickname: Option<String>,
    native_name: Option<String>,
    work_country: Option<String>,
    industry: Option<String>,
    investment_profile: Option<String>,
    expertise_level: Option<String>,
    job_description: Option<String>,
    registered_by: OrgCode,
    legal_basis: LegalBasis,
    source: DataSource,
    restricted: bool,
    objection_pending: bool,
    marketing_objection: bool,
    legal_hold: bool,
    legal_hold_reason: Option<String>,
    last_processed_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = services)]
struct SeedService {
    id: Uuid,
    kind: ServiceKind,
    title: String,
    provider: OrgCode,
    company_id: Uuid,
    contact_id: Option<Uuid>,
    status: ServiceStatus,
    requested_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    invoiced_at: Option<DateTime<Utc>>,
    legal_basis: LegalBasis,
    source: DataSource,
    amount_eur: Option<BigDecimal>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = data_subject_requests)]
struct SeedRequest {
    id: Uuid,
    kind: RequestKind,
    contact_id: Option<Uuid>,
    subject_description: Option<String>,
    received_by: OrgCode,
    received_at: DateTime<Utc>,
    due_at: NaiveDate,
    status: RequestStatus,
    resolution: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SeedReport {
    pub companies: usize,
    pub confidential: usize,
    pub contacts: usize,
    pub services: usize,
    pub requests: usize,
    pub millis: u128,
}

/// Five years and a margin: what the retention rule treats as expired.
const OLD_DAYS: (i64, i64) = (5 * 366 + 10, 8 * 365);

fn ascii_slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .map(|c| match c {
            'ä' | 'å' => 'a',
            'ö' => 'o',
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect()
}

/// Loads the demo register. Refuses a register that already has companies
/// unless `reset`, which empties the register tables first.
pub async fn seed(
    conn: &mut AsyncPgConnection,
    scale: u32,
    reset: bool,
) -> anyhow::Result<SeedReport> {
    anyhow::ensure!((1..=100).contains(&scale), "scale must be between 1 and 100");
    let started = Instant::now();
    let existing: i64 = companies::table.count().get_result(conn).await?;
    if existing > 0 && !reset {
        anyhow::bail!("the register already has {existing} companies; use --reset to replace them with the demo register");
    }
    let now = Utc::now();
    let mut rng = Rng(0x4b41_5356_5543_524d ^ u64::from(scale));
    let controllers: Vec<OrgCode> = OrgCode::controllers().collect();
    let n_companies = 2000 * scale as usize;

    let mut comps = Vec::with_capacity(n_companies);
    let mut number: u32 = 1_000_000 + scale * 7919;
    for i in 0..n_companies {
        let digits = loop {
            number += 1 + (rng.below(50) as u32);
            let d = format!("{:07}", number % 10_000_000);
            if let Some(c) = business_id_check_digit(&d) {
                break format!("{d}-{c}");
            }
        };
        let sector = rng.chance(18);
        let form = if rng.chance(8) { CompanyForm::SoleTrader } else { *rng.pick(FORMS) };
        let base = if sector {
            format!("{}{}", rng.pick(PREFIX), rng.pick(FOOD))
        } else {
            format!("{}{}", rng.pick(PREFIX), rng.pick(SUFFIX))
        };
        let name = match form {
            CompanyForm::SoleTrader => {
                format!("{} {} (toiminimi {})", rng.pick(FIRST), rng.pick(LAST), base)
            }
            CompanyForm::LimitedCompany => format!("{base} Oy {i}"),
            CompanyForm::PublicLimitedCompany => format!("{base} Oyj {i}"),
            CompanyForm::Cooperative => format!("{base} osuuskunta {i}"),
            CompanyForm::Foreign => format!("{base} Ltd {i}"),
            _ => format!("{base} Ky {i}"),
        };
        let old = rng.chance(4);
        let created_at = if old {
            rng.days_ago(now, OLD_DAYS.0 + 100, OLD_DAYS.1 + 400)
        } else {
            rng.days_ago(now, 10, 4 * 365)
        };
        let last_processed_at = if old {
            rng.days_ago(now, OLD_DAYS.0, OLD_DAYS.1)
        } else {
            created_at + Duration::days(rng.below(200) as i64)
        };
        let hold = old && rng.chance(30);
        comps.push(SeedCompany {
            id: rng.uuid(),
            business_id: digits,
            website: (!matches!(form, CompanyForm::SoleTrader) && rng.chance(70))
                .then(|| format!("https://www.{}.fi", ascii_slug(&base))),
            name,
            company_form: form,
            industry_code: Some(
                (*rng.pick(if sector { SECTOR_CODES } else { OTHER_CODES })).to_owned(),
            ),
            municipality: Some((*rng.pick(MUNICIPALITIES)).to_owned()),
            country: if form == CompanyForm::Foreign {
                (*rng.pick(COUNTRIES_ABROAD)).to_owned()
            } else {
                "FI".to_owned()
            },
            registered_by: *rng.pick(&controllers),
            legal_basis: *rng.pick(LEGAL),
            source: *rng.pick(SOURCES),
            created_at,
            updated_at: last_processed_at.max(created_at),
            last_processed_at: last_processed_at.min(now),
            legal_hold: hold,
            legal_hold_reason: hold.then(|| "pending recovery of funding (court case)".to_owned()),
        });
    }

    let mut confs = Vec::new();
    for c in &comps {
        if rng.chance(30) {
            let mut orgs =
                vec![*rng.pick(&[OrgCode::Bf, OrgCode::Finnvera, OrgCode::Ely, OrgCode::Bfoy])];
            if rng.chance(40) {
                let other =
                    *rng.pick(&[OrgCode::Bf, OrgCode::Finnvera, OrgCode::Tem, OrgCode::Keha]);
                if !orgs.contains(&other) {
                    orgs.push(other);
                }
            }
            for org in orgs {
                confs.push(SeedConfidential {
                    id: rng.uuid(),
                    company_id: c.id,
                    registered_by: org,
                    turnover_eur: Some(BigDecimal::from(50_000 + rng.below(50_000_000) as i64)),
                    employee_count: Some(1 + rng.below(500) as i32),
                    risk_rating: Some((*rng.pick(&["A", "B", "C", "D", "E"])).to_owned()),
                    funding_decisions: rng.chance(60).then(|| {
                        format!(
                            "{} grant {} EUR, decision {}",
                            org,
                            10_000 + rng.below(900_000),
                            2019 + rng.below(7)
                        )
                    }),
                    notes: rng
                        .chance(40)
                        .then(|| "confidential assessment of growth potential".to_owned()),
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                });
            }
        }
    }

    let mut people = Vec::with_capacity(n_companies * 3);
    for c in &comps {
        let count = 1 + rng.below(5) as usize; // 1..=5, mean 3
        for k in 0..count {
            let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
            let old = c.last_processed_at < now - Duration::days(OLD_DAYS.0) || rng.chance(3);
            let created_at = if old {
                c.created_at.min(now - Duration::days(OLD_DAYS.0 + 30))
            } else {
                c.created_at + Duration::days(rng.below(100) as i64)
            };
            let last_processed_at = if old {
                rng.days_ago(now, OLD_DAYS.0, OLD_DAYS.1).max(created_at)
            } else {
                (created_at + Duration::days(rng.below(300) as i64)).min(now)
            };
            let hold = old && rng.chance(25);
            let abroad = rng.chance(5);
            let domain = c
                .website
                .as_deref()
                .and_then(|w| w.strip_prefix("https://www."))
                .unwrap_or("example.fi")
                .to_owned();
            people.push(SeedContact {
                id: rng.uuid(),
                company_id: c.id,
                first_name: Some(first.to_owned()),
                last_name: Some(last.to_owned()),
                home_country: Some(if abroad {
                    (*rng.pick(COUNTRIES_ABROAD)).to_owned()
                } else {
                    "FI".to_owned()
                }),
                home_municipality: rng.chance(80).then(|| (*rng.pick(MUNICIPALITIES)).to_owned()),
                postal_address: rng.chance(60).then(|| {
                    format!(
                        "{}katu {} A {}",
                        rng.pick(PREFIX),
                        1 + rng.below(80),
                        1 + rng.below(30)
                    )
                }),
                email: rng
                    .chance(90)
                    .then(|| format!("{}.{}{}@{}", ascii_slug(first), ascii_slug(last), k, domain)),
                phone: rng
                    .chance(80)
                    .then(|| format!("+358 40 {:03} {:04}", rng.below(1000), rng.below(10_000))),
                title: Some((*rng.pick(TITLES)).to_owned()),
                role_in_company: Some((*rng.pick(ROLES)).to_owned()),
                nickname: rng.chance(10).then(|| first.chars().take(3).collect()),
                native_name: abroad.then(|| format!("{first} {last}")),
                work_country: abroad.then(|| (*rng.pick(COUNTRIES_ABROAD)).to_owned()),
                industry: rng.chance(50).then(|| {
                    (*rng.pick(&["ICT", "food", "forestry", "energy", "health"])).to_owned()
                }),
                investment_profile: rng.chance(15).then(|| "angel investor, seed stage".to_owned()),
                expertise_level: rng.chance(40).then(|| (*rng.pick(EXPERTISE)).to_owned()),
                job_description: rng
                    .chance(30)
                    .then(|| "responsible for export and internationalisation".to_owned()),
                registered_by: *rng.pick(&controllers),
                legal_basis: *rng.pick(LEGAL),
                source: *rng.pick(SOURCES),
                restricted: rng.chance(3),
                // Derived by the database from the open OBJECTION requests
                // below (migration 000003).
                objection_pending: false,
                marketing_objection: rng.chance(6),
                legal_hold: hold,
                legal_hold_reason: hold.then(|| "evidence in a pending funding matter".to_owned()),
                last_processed_at,
                created_at,
                updated_at: last_processed_at,
            });
        }
    }

    let kinds = ServiceKind::ALL;
    let statuses = ServiceStatus::ALL;
    let mut servs = Vec::with_capacity(n_companies * 10);
    let mut by_company: std::collections::HashMap<Uuid, Vec<(Uuid, DateTime<Utc>)>> =
        std::collections::HashMap::new();
    for p in &people {
        by_company.entry(p.company_id).or_default().push((p.id, p.last_processed_at));
    }
    for c in &comps {
        let persons = by_company.get(&c.id).cloned().unwrap_or_default();
        for _ in 0..10 {
            let kind = *rng.pick(kinds);
            let status = *rng.pick(statuses);
            let contact = (!persons.is_empty() && rng.chance(70)).then(|| *rng.pick(&persons));
            // A service for a person is processing: it is not newer than their last_processed_at.
            let requested_at = match contact {
                Some((_, processed)) => processed - Duration::days(rng.below(30) as i64),
                None => c.last_processed_at - Duration::days(rng.below(60) as i64),
            }
            .max(c.created_at);
            let delivered = matches!(status, ServiceStatus::Delivered | ServiceStatus::Invoiced)
                .then(|| requested_at + Duration::hours(1 + rng.below(24 * 20) as i64));
            let invoiced = (status == ServiceStatus::Invoiced)
                .then(|| delivered.unwrap_or(requested_at) + Duration::hours(1));
            servs.push(SeedService {
                id: rng.uuid(),
                kind,
                title: format!(
                    "{} {}",
                    kind.as_str().to_lowercase().replace('_', " "),
                    rng.pick(&["kasvu", "vienti", "rahoitus", "digitalisaatio", "investointi"])
                ),
                provider: *rng.pick(&controllers),
                company_id: c.id,
                contact_id: contact.map(|(id, _)| id),
                status,
                requested_at,
                delivered_at: delivered,
                invoiced_at: invoiced,
                legal_basis: *rng.pick(LEGAL),
                source: *rng.pick(SOURCES),
                amount_eur: matches!(
                    kind,
                    ServiceKind::Order
                        | ServiceKind::Training
                        | ServiceKind::Funding
                        | ServiceKind::Event
                )
                .then(|| BigDecimal::from(100 + rng.below(20_000) as i64)),
                notes: rng.chance(30).then(|| "internal: follow up next quarter".to_owned()),
                created_at: requested_at,
                updated_at: invoiced.or(delivered).unwrap_or(requested_at),
            });
        }
    }

    let mut reqs = Vec::new();
    for (i, kind) in RequestKind::ALL
        .iter()
        .cycle()
        .take(12 * RequestKind::ALL.len() * scale as usize)
        .enumerate()
    {
        // Every kind with every status: the status changes once per round of kinds.
        let status = RequestStatus::ALL[(i / RequestKind::ALL.len()) % RequestStatus::ALL.len()];
        let person = rng.pick(&people);
        let received_at = rng.days_ago(now, 1, 70);
        let due = crate::validate::one_month_after(received_at.date_naive());
        let done = matches!(status, RequestStatus::Completed | RequestStatus::Rejected);
        reqs.push(SeedRequest {
            id: rng.uuid(),
            kind: *kind,
            contact_id: (i % 9 != 0).then_some(person.id),
            subject_description: (i % 9 == 0).then(|| {
                format!(
                    "{} {}, born 1970, says a company they own was advised in 2021",
                    rng.pick(FIRST),
                    rng.pick(LAST)
                )
            }),
            received_by: *rng.pick(&controllers),
            received_at,
            due_at: due,
            status,
            resolution: done.then(|| {
                if status == RequestStatus::Rejected {
                    "no data about the person was found".to_owned()
                } else {
                    "carried out".to_owned()
                }
            }),
            resolved_at: done.then(|| received_at + Duration::days(5)),
            created_at: received_at,
            updated_at: received_at,
        });
    }

    let report = SeedReport {
        companies: comps.len(),
        confidential: confs.len(),
        contacts: people.len(),
        services: servs.len(),
        requests: reqs.len(),
        millis: 0,
    };
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
            if reset {
                diesel::sql_query("TRUNCATE data_subject_requests, services, contacts, company_confidential, companies, change_log").execute(conn).await?;
            }
            // Chunks stay under PostgreSQL's 65,535 bind parameters.
            for chunk in comps.chunks(2000) {
                diesel::insert_into(companies::table).values(chunk).execute(conn).await?;
            }
            for chunk in confs.chunks(2000) {
                diesel::insert_into(company_confidential::table).values(chunk).execute(conn).await?;
            }
            for chunk in people.chunks(1500) {
                diesel::insert_into(contacts::table).values(chunk).execute(conn).await?;
            }
            for chunk in servs.chunks(2500) {
                diesel::insert_into(services::table).values(chunk).execute(conn).await?;
            }
            // Tombstones (R11): some sole traders erased with their contacts,
            // and some other contacts; every personal column the register
            // declares is cleared.
            diesel::sql_query(format!(
                "UPDATE companies SET {}, erased_at = now() - interval '20 days',
                    erased_by = 'seed-dpo', erased_by_org = registered_by
                 WHERE id IN (SELECT id FROM companies WHERE company_form = 'SOLE_TRADER' AND NOT legal_hold ORDER BY id LIMIT {})",
                ResourceKind::Company.erase_assignments(),
                5 * scale
            ))
            .execute(conn)
            .await?;
            diesel::sql_query(format!(
                "UPDATE contacts SET {}, erased_at = now() - interval '20 days', erased_by = 'seed-dpo', erased_by_org = registered_by
                 WHERE NOT legal_hold AND (company_id IN (SELECT id FROM companies WHERE erased_at IS NOT NULL)
                    OR id IN (SELECT id FROM contacts WHERE NOT legal_hold ORDER BY id LIMIT {}))",
                ResourceKind::Contact.erase_assignments(),
                30 * scale
            ))
            .execute(conn)
            .await?;
            for chunk in reqs.chunks(2000) {
                diesel::insert_into(data_subject_requests::table).values(chunk).execute(conn).await?;
            }
            Ok(())
    })
    .await?;
    super::fold_visible_counts(conn).await?;
    // Statistics for the planner right after the bulk load: without them it
    // guesses that few companies are unerased and sorts a whole table for a
    // ten-row page instead of walking the (created_at, id) index. VACUUM sets
    // the visibility map, so counts are index-only scans from the first request.
    diesel::sql_query(
        "VACUUM (ANALYZE) companies, company_confidential, contacts, services, data_subject_requests",
    )
    .execute(conn)
    .await?;
    Ok(SeedReport { millis: started.elapsed().as_millis(), ..report })
}
