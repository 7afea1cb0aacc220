-- The gateway's own 3 read statements for the TEM viewer's dashboard, as captured from the
-- PostgreSQL log (log_statement=all) on 2026-12-02, binary 8968826: the columns the document can
-- serve plus each row's facts (src/db/project.rs), the policy's visibility predicate as the gateway
-- binds it (for services the bound `true`), LIMIT 51 for hasNextPage. Wrapped as
-- ../shared/bench/peer/sql/pgbench_gateway_sql.sql is, so that the last row carries the id array
-- for the next statement (\aset keeps the last row). Run beside that harness's floor script; see
-- docs/performance.md ("The gateway's own statements").
SELECT t.*, CASE WHEN row_number() OVER w = count(*) OVER () THEN array_agg(t.id) FILTER (WHERE t.rn <= 50) OVER () END AS company_ids
  FROM (SELECT q.*, row_number() OVER (ORDER BY q.created_at, q.id) AS rn FROM (SELECT "companies"."id", "companies"."name", "companies"."company_form", "companies"."industry_code", "companies"."municipality", "companies"."registered_by", "companies"."created_at", "companies"."erased_at" FROM "companies" WHERE  NOT (("companies"."erased_at" IS NOT NULL)) ORDER BY "companies"."created_at" ASC, "companies"."id" ASC LIMIT 51) q) t
WINDOW w AS (ORDER BY t.created_at, t.id) ORDER BY t.created_at, t.id \aset
SELECT t.*, CASE WHEN row_number() OVER w = count(*) OVER () THEN array_agg(t.id) OVER () END AS contact_ids
  FROM (SELECT "contacts"."id", "contacts"."company_id", "contacts"."first_name", "contacts"."last_name", "contacts"."home_country", "contacts"."email", "contacts"."registered_by", "contacts"."restricted", "contacts"."objection_pending", "contacts"."marketing_objection", "contacts"."created_at", "contacts"."erased_at" FROM "contacts" WHERE (("contacts"."company_id" = ANY(:company_ids::uuid[])) AND ( NOT (("contacts"."restricted" OR "contacts"."objection_pending")) AND  NOT (("contacts"."erased_at" IS NOT NULL)))) ORDER BY "contacts"."created_at" ASC, "contacts"."id" ASC) t
WINDOW w AS (ORDER BY t.created_at, t.id) ORDER BY t.created_at, t.id \aset
SELECT "services"."id", "services"."kind", "services"."provider", "services"."company_id", "services"."contact_id", "services"."status", "services"."requested_at", "services"."amount_eur", "services"."created_at" FROM "services" WHERE (("services"."contact_id" = ANY(:contact_ids::uuid[])) AND true) ORDER BY "services"."created_at" ASC, "services"."id" ASC;
