//! The command line of docs/contract.md.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::audit::chain::Verdict;
use crate::auth::{self, JwtConfig};
use crate::config::{Config, DbConfig};
use crate::db::audit::{self, Seq};

#[derive(Debug, Parser)]
#[command(
    name = "kasvu-gateway",
    version,
    about = "GraphQL gateway in front of the KasvuCRM customer register"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL gateway.
    Serve(Box<Config>),
    /// Apply pending migrations.
    Migrate(DbConfig),
    /// Load the deterministic demo register.
    Seed {
        #[command(flatten)]
        db: DbConfig,
        /// 1: about 2,000 companies, 6,000 contacts and 20,000 services.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        /// Empty the register tables first.
        #[arg(long)]
        reset: bool,
    },
    /// Print a token signed with the development key.
    Token {
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
        /// Comma-separated: viewer, editor, confidential, dpo, auditor.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        country: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
        #[command(flatten)]
        jwt: JwtConfig,
    },
    /// Print the GraphQL schema (SDL) the gateway serves.
    Schema,
    /// GET a URL and succeed only on a 2xx answer: the chart's `helm test`
    /// pod asks /readyz with it (the image has no shell or curl).
    Probe {
        url: String,
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Benchmarks (run against a seeded database).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Erase (or with --dry-run list) what the five-year retention rule says must go.
    Retention {
        #[command(flatten)]
        db: DbConfig,
        /// List only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit hash chain from the genesis and say where it breaks
    /// (exit code 1 when it does).
    Verify(VerifyArgs),
    /// Move whole months before --before out of the database into files
    /// (one JSON event a line), record where each sat in the chain, and
    /// detach and drop their partitions. Needs the tables' owner.
    Archive(ArchiveArgs),
    /// Events, distinct id lists and bytes on disk per month in the database.
    Size(DbConfig),
    /// The newest events, one readable line each, newest last; --follow
    /// keeps printing new ones as they are stored.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// Also re-hash the archive files of archived months in this directory
    /// against the ledger.
    #[arg(long)]
    pub archives: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// Archive the months before this one (YYYY-MM); the current month
    /// never is.
    #[arg(long, value_parser = parse_month)]
    pub before: chrono::NaiveDate,
    /// Where the archive files are written.
    #[arg(long)]
    pub dir: std::path::PathBuf,
}

fn parse_month(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a month as YYYY-MM"))
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// How many of the newest events to print first.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub lines: i64,
    /// Keep printing new events (polled every second) until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only this subject (`sub`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this organisation.
    #[arg(long)]
    pub org: Option<String>,
    /// Only events about this resource id.
    #[arg(long)]
    pub resource: Option<uuid::Uuid>,
    /// Only denials.
    #[arg(long)]
    pub denied: bool,
    /// Only events naming this rule.
    #[arg(long)]
    pub rule: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Authorization cost of the dashboard query, cold and memoized.
    Policy(crate::bench::BenchArgs),
    /// The dashboard query under concurrent load with auditing on: group
    /// commit against one audit transaction per request.
    Audit(crate::bench::AuditBenchArgs),
    /// CPU per request (gateway and PostgreSQL) of each query shape, one
    /// request at a time; `--budget-ms` fails when the dashboard costs more.
    Cpu(crate::bench::CpuBenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the table-driven policy tests (`<POLICY_DIR>/tests/*.table`) and report each case.
    Test {
        #[arg(long, env = "POLICY_DIR", default_value = "policies")]
        policy_dir: std::path::PathBuf,
    },
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 =
        n.parse().map_err(|_| format!("{s:?}: expected a number and a unit (s, m, h, d)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// A connection as the login of DATABASE_URL itself (no `SET ROLE`): the
/// operator's commands seed, reset and read what the gateway's role may not.
async fn owner_connection(db: &DbConfig) -> anyhow::Result<crate::db::PooledConn> {
    let settings = crate::db::PoolSettings { max_size: 1, role: None, ..db.pool_settings() };
    let pool = crate::db::build_pool(&db.database_url, &settings, Default::default())?;
    Ok(pool.get().await?)
}

/// Runs a command; the process exit code is 0 on success.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            config.log_in_force();
            let app = crate::app::App::build(*config).await?;
            crate::http::serve(app).await
        }
        Command::Migrate(db) => {
            let applied = crate::db::run_migrations(&db.database_url).await?;
            println!(
                "applied {} migration(s){}",
                applied.len(),
                if applied.is_empty() {
                    String::new()
                } else {
                    format!(": {}", applied.join(", "))
                }
            );
            Ok(())
        }
        Command::Seed { db, scale, reset } => {
            crate::db::run_migrations(&db.database_url).await?;
            let mut conn = owner_connection(&db).await?;
            let r = crate::db::seed::seed(&mut conn, scale, reset).await?;
            println!(
                "seeded scale {scale}: {} companies, {} confidential rows, {} contacts, {} services, {} requests in {} ms",
                r.companies, r.confidential, r.contacts, r.services, r.requests, r.millis
            );
            Ok(())
        }
        Command::Token { sub, org, roles, country, ttl, jwt } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let claims = auth::Claims::new(&jwt, &sub, &org, &roles, country.as_deref(), ttl);
            // Refuse to sign what the gateway would refuse to accept.
            auth::actor_from_claims(claims.clone(), auth::Purpose::CustomerRelationship)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", auth::sign_dev_token(&jwt, &claims)?);
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Test { policy_dir } } => {
            let engine = crate::authz::PolicyEngine::load(&policy_dir)?;
            let outcomes = crate::authz::cases::run(
                &engine,
                crate::authz::cases::load(&policy_dir.join("tests"))?,
            )?;
            let failed = outcomes.iter().filter(|o| !o.passed()).count();
            for o in &outcomes {
                let place = format!("{}:{}", o.case.file.display(), o.case.line);
                if o.passed() {
                    println!("ok    {place}  {}", o.case.text);
                } else {
                    let got = if o.allowed { "allow" } else { "deny" };
                    println!(
                        "FAIL  {place}  {}\n      got {got} {}",
                        o.case.text,
                        o.rules.join(", ")
                    );
                }
            }
            println!("policy {}: {} queries", engine.version(), engine.queries());
            println!("{} passed, {} failed", outcomes.len() - failed, failed);
            anyhow::ensure!(failed == 0, "{failed} policy case(s) failed");
            Ok(())
        }
        Command::Bench { command: BenchCommand::Policy(args) } => crate::bench::policy(args).await,
        Command::Bench { command: BenchCommand::Audit(args) } => crate::bench::audit(args).await,
        Command::Bench { command: BenchCommand::Cpu(args) } => crate::bench::cpu(args).await,
        Command::Audit { command: AuditCommand::Tail(args) } => {
            let mut conn = owner_connection(&args.db).await?;
            let filter = audit::AuditFilter {
                actor_sub: args.actor,
                actor_org: args.org,
                resource_id: args.resource,
                allowed: args.denied.then_some(false),
                rule: args.rule,
                ..Default::default()
            };
            let mut newest =
                audit::search(&mut conn, &filter, Seq::Before(None), args.lines.max(1)).await?;
            newest.reverse();
            let mut last = newest.last().map(|e| e.seq);
            for e in &newest {
                println!("{}", crate::audit::tail_line(e));
            }
            if !args.follow {
                return Ok(());
            }
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let mut new = audit::search(&mut conn, &filter, Seq::After(last), 500).await?;
                new.sort_by_key(|e| e.seq);
                for e in &new {
                    println!("{}", crate::audit::tail_line(e));
                    last = Some(e.seq);
                }
            }
        }
        Command::Audit { command: AuditCommand::Verify(args) } => {
            let mut conn = owner_connection(&args.db).await?;
            let mut verdict = crate::audit::chain::verify(&mut conn).await?;
            if let (Verdict::Intact { .. }, Some(dir)) = (&verdict, &args.archives) {
                let files = crate::audit::archive::verify_files(&mut conn, dir).await?;
                if matches!(files, Verdict::Broken { .. }) {
                    verdict = files;
                }
            }
            match verdict {
                Verdict::Intact { events, archived, head } => {
                    let archived = match (archived, &args.archives) {
                        (0, _) => String::new(),
                        (n, Some(_)) => format!(" and {n} in archive files, checked"),
                        (n, None) => format!(
                            " and {n} in archived months (their files not read: --archives DIR)"
                        ),
                    };
                    match head {
                        Some((seq, hash)) => println!(
                            "audit chain intact: {events} events{archived}; head {seq} sha256:{hash}"
                        ),
                        None => println!("audit chain intact: no events yet"),
                    }
                    Ok(())
                }
                Verdict::Broken { seq, id, reason, checked } => {
                    let id = id.map(|i| format!(" ({i})")).unwrap_or_default();
                    println!("audit chain BROKEN at event {seq}{id}: {reason}");
                    println!("{checked} events before it verified");
                    anyhow::bail!("the audit chain is broken at event {seq}")
                }
            }
        }
        Command::Audit { command: AuditCommand::Size(db) } => {
            let mut conn = owner_connection(&db).await?;
            let months = audit::sizes(&mut conn).await?;
            let per = |bytes: i64, n: i64| if n > 0 { bytes as f64 / n as f64 } else { 0.0 };
            println!("month      events   id lists  event bytes  of which indexes  id list bytes  bytes/event");
            let (mut n, mut bytes) = (0, 0);
            for m in &months {
                let total = m.event_bytes + m.set_bytes;
                println!(
                    "{}  {:>8}  {:>8}  {:>11}  {:>16}  {:>13}  {:>11.0}",
                    m.month.format("%Y-%m"),
                    m.events,
                    m.sets,
                    m.event_bytes,
                    m.event_index_bytes,
                    m.set_bytes,
                    per(total, m.events)
                );
                (n, bytes) = (n + m.events, bytes + total);
            }
            println!("total    {n:>8} events, {bytes} bytes, {:.0} bytes/event", per(bytes, n));
            Ok(())
        }
        Command::Audit { command: AuditCommand::Archive(args) } => {
            let mut conn = owner_connection(&args.db).await?;
            let done = crate::audit::archive::archive(&mut conn, args.before, &args.dir).await?;
            for a in &done {
                println!(
                    "archived {}: {} events, seq {}..={}, {} sha256:{}",
                    a.month.format("%Y-%m"),
                    a.events,
                    a.first_seq,
                    a.last_seq,
                    args.dir.join(&a.file_name).display(),
                    hex::encode(&a.file_sha256)
                );
            }
            println!("{} month(s) archived", done.len());
            Ok(())
        }
        Command::Retention { db, dry_run } => {
            let mut conn = owner_connection(&db).await?;
            if dry_run {
                let due = crate::retention::due(&mut conn, i64::MAX).await?;
                for d in &due {
                    println!(
                        "{:<8} {}  {:<12} last processed {}",
                        d.kind.as_str(),
                        d.id,
                        d.registered_by.as_str(),
                        d.last_processed_at.format("%Y-%m-%d")
                    );
                }
                println!("{} record(s) due for erasure (dry run: nothing changed)", due.len());
            } else {
                let outcome = crate::retention::run(&mut conn).await?;
                use crate::register::ResourceKind;
                let count = |k| outcome.erased.iter().filter(|d| d.kind == k).count();
                println!(
                    "erased {} contact(s) and {} sole trader(s) past the {}-year rule; {} kept on a second look",
                    count(ResourceKind::Contact),
                    count(ResourceKind::Company),
                    crate::retention::YEARS,
                    outcome.skipped
                );
            }
            Ok(())
        }
        Command::Probe { url, timeout_secs } => {
            let client =
                reqwest::Client::builder().timeout(Duration::from_secs(timeout_secs)).build()?;
            let status = client.get(&url).send().await?.status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}");
            println!("{url}: {status}");
            Ok(())
        }
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(())
        }
    }
}
