-- The KasvuCRM register: organisations, companies, confidential company data,
-- contacts, services, the change log and data subject requests (domain.md).
-- Enumerations are text with CHECK constraints: readable in psql, and a new
-- value is one ALTER ... CHECK instead of an enum type migration.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z]+$'),
    name_en     text NOT NULL,
    name_fi     text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('CONTROLLER', 'RECIPIENT')),
    business_id text
);
COMMENT ON TABLE organizations IS 'The joint controllers and the two recipients of the register (domain.md); loaded by this migration.';

INSERT INTO organizations (code, name_en, name_fi, kind, business_id) VALUES
    ('TEM', 'Ministry of Economic Affairs and Employment', 'Työ- ja elinkeinoministeriö', 'CONTROLLER', NULL),
    ('ELY', 'Vitality Centres', 'Elinvoimakeskukset', 'CONTROLLER', NULL),
    ('KEHA', 'Development and Administrative Centre', 'KEHA-keskus', 'CONTROLLER', NULL),
    ('UM', 'Ministry for Foreign Affairs', 'Ulkoministeriö', 'CONTROLLER', NULL),
    ('TUKES', 'Finnish Safety and Chemicals Agency', 'Turvallisuus- ja kemikaalivirasto', 'CONTROLLER', NULL),
    ('BF', 'Business Finland, innovation funding agency', 'Innovaatiorahoituskeskus Business Finland', 'CONTROLLER', '0512696-4'),
    ('BFOY', 'Business Finland Oy', 'Business Finland Oy', 'CONTROLLER', '2725690-3'),
    ('FINNVERA', 'Finnvera', 'Finnvera Oyj', 'CONTROLLER', '1484332-4'),
    ('MMM', 'Ministry of Agriculture and Forestry', 'Maa- ja metsätalousministeriö', 'RECIPIENT', NULL),
    ('RUOKAVIRASTO', 'Finnish Food Authority', 'Ruokavirasto', 'RECIPIENT', NULL);

CREATE TABLE companies (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL only after a sole trader's erasure (a sole trader's business ID is personal data).
    business_id        text CHECK (business_id ~ '^[0-9]{7}-[0-9]$'),
    name               text,
    company_form       text NOT NULL CHECK (company_form IN ('LIMITED_COMPANY', 'PUBLIC_LIMITED_COMPANY', 'PARTNERSHIP',
                           'LIMITED_PARTNERSHIP', 'COOPERATIVE', 'SOLE_TRADER', 'FOREIGN', 'OTHER')),
    industry_code      text CHECK (industry_code ~ '^[0-9]{5}$'),
    municipality       text,
    country            text NOT NULL DEFAULT 'FI' CHECK (country ~ '^[A-Z]{2}$'),
    website            text,
    registered_by      text NOT NULL REFERENCES organizations (code),
    legal_basis        text NOT NULL CHECK (legal_basis IN ('CONTRACT', 'LEGAL_OBLIGATION', 'PUBLIC_INTEREST', 'LEGITIMATE_INTEREST')),
    source             text NOT NULL CHECK (source IN ('NATIONAL_RESOURCE', 'DATA_SUBJECT', 'EVENT_THIRD_PARTY', 'PUBLIC_SOURCE')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_processed_at  timestamptz NOT NULL DEFAULT now(),
    legal_hold         boolean NOT NULL DEFAULT false,
    legal_hold_reason  text,
    erased_at          timestamptz,
    erased_by          text,
    erased_by_org      text REFERENCES organizations (code),
    CONSTRAINT companies_identified CHECK (erased_at IS NOT NULL OR (name IS NOT NULL AND business_id IS NOT NULL)),
    CONSTRAINT companies_hold_reason CHECK (NOT legal_hold OR legal_hold_reason IS NOT NULL)
);
COMMENT ON TABLE companies IS 'Companies (customers and prospects). Public data, except a sole trader''s name and business ID, which are personal data.';
CREATE UNIQUE INDEX companies_business_id_key ON companies (business_id) WHERE business_id IS NOT NULL;
CREATE INDEX companies_created_at_id_idx ON companies (created_at, id);
CREATE INDEX companies_name_trgm_idx ON companies USING gin (name gin_trgm_ops);
CREATE INDEX companies_industry_code_idx ON companies (industry_code text_pattern_ops);
CREATE INDEX companies_municipality_idx ON companies (municipality);
CREATE INDEX companies_company_form_idx ON companies (company_form);
CREATE INDEX companies_registered_by_idx ON companies (registered_by);
CREATE INDEX companies_erased_by_org_idx ON companies (erased_by_org);
CREATE INDEX companies_last_processed_at_idx ON companies (last_processed_at);

CREATE TABLE company_confidential (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid NOT NULL REFERENCES companies (id),
    registered_by      text NOT NULL REFERENCES organizations (code),
    turnover_eur       numeric(16, 2),
    employee_count     integer CHECK (employee_count >= 0),
    risk_rating        text,
    funding_decisions  text,
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT company_confidential_one_per_org UNIQUE (company_id, registered_by)
);
COMMENT ON TABLE company_confidential IS 'Company data that is confidential by law (funding decisions, risk ratings); one row per company and registering controller.';
CREATE INDEX company_confidential_registered_by_idx ON company_confidential (registered_by);

CREATE TABLE contacts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id          uuid NOT NULL REFERENCES companies (id),
    first_name          text,
    last_name           text,
    home_country        text CHECK (home_country ~ '^[A-Z]{2}$'),
    home_municipality   text,
    postal_address      text,
    email               text,
    phone               text,
    title               text,
    role_in_company     text,
    nickname            text,
    native_name         text,
    native_address      text,
    native_title        text,
    work_country        text CHECK (work_country ~ '^[A-Z]{2}$'),
    industry            text,
    investment_profile  text,
    expertise_level     text,
    job_description     text,
    other_description   text,
    registered_by       text NOT NULL REFERENCES organizations (code),
    legal_basis         text NOT NULL CHECK (legal_basis IN ('CONTRACT', 'LEGAL_OBLIGATION', 'PUBLIC_INTEREST', 'LEGITIMATE_INTEREST')),
    source              text NOT NULL CHECK (source IN ('NATIONAL_RESOURCE', 'DATA_SUBJECT', 'EVENT_THIRD_PARTY', 'PUBLIC_SOURCE')),
    restricted          boolean NOT NULL DEFAULT false,
    -- An objection under GDPR art. 21(1) being assessed: processing is restricted meanwhile (R5).
    objection_pending   boolean NOT NULL DEFAULT false,
    marketing_objection boolean NOT NULL DEFAULT false,
    legal_hold          boolean NOT NULL DEFAULT false,
    legal_hold_reason   text,
    last_processed_at   timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    erased_at           timestamptz,
    erased_by           text,
    erased_by_org       text REFERENCES organizations (code),
    CONSTRAINT contacts_named CHECK (erased_at IS NOT NULL OR last_name IS NOT NULL),
    CONSTRAINT contacts_hold_reason CHECK (NOT legal_hold OR legal_hold_reason IS NOT NULL)
);
COMMENT ON TABLE contacts IS 'Contact and responsible persons of companies: personal data under GDPR, kept at most five years from last_processed_at.';
CREATE INDEX contacts_company_id_idx ON contacts (company_id);
CREATE INDEX contacts_registered_by_idx ON contacts (registered_by);
CREATE INDEX contacts_erased_by_org_idx ON contacts (erased_by_org);
CREATE INDEX contacts_email_idx ON contacts (lower(email));
CREATE INDEX contacts_name_trgm_idx ON contacts USING gin ((coalesce(first_name, '') || ' ' || coalesce(last_name, '')) gin_trgm_ops);
CREATE INDEX contacts_created_at_id_idx ON contacts (created_at, id);
CREATE INDEX contacts_last_processed_at_idx ON contacts (last_processed_at);

CREATE TABLE services (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('ADVISORY', 'FUNDING', 'EVENT', 'CONTACT_REQUEST', 'TRAINING', 'ORDER', 'OTHER')),
    title         text NOT NULL,
    provider      text NOT NULL REFERENCES organizations (code),
    company_id    uuid NOT NULL REFERENCES companies (id),
    contact_id    uuid REFERENCES contacts (id),
    status        text NOT NULL CHECK (status IN ('REQUESTED', 'ORDERED', 'DELIVERED', 'INVOICED', 'CANCELLED')),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    invoiced_at   timestamptz,
    legal_basis   text NOT NULL CHECK (legal_basis IN ('CONTRACT', 'LEGAL_OBLIGATION', 'PUBLIC_INTEREST', 'LEGITIMATE_INTEREST')),
    source        text NOT NULL CHECK (source IN ('NATIONAL_RESOURCE', 'DATA_SUBJECT', 'EVENT_THIRD_PARTY', 'PUBLIC_SOURCE')),
    amount_eur    numeric(14, 2),
    notes         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE services IS 'Advice and other services a company or person received: events, contact requests, orders, deliveries and invoicing. amount_eur and notes are internal to the provider.';
CREATE INDEX services_company_id_idx ON services (company_id);
CREATE INDEX services_contact_id_idx ON services (contact_id);
CREATE INDEX services_provider_idx ON services (provider);
CREATE INDEX services_kind_idx ON services (kind);
CREATE INDEX services_status_idx ON services (status);
CREATE INDEX services_requested_at_idx ON services (requested_at);
CREATE INDEX services_created_at_id_idx ON services (created_at, id);

CREATE TABLE change_log (
    id              bigserial PRIMARY KEY,
    entity          text NOT NULL CHECK (entity IN ('company', 'company_confidential', 'contact', 'service', 'data_subject_request')),
    entity_id       uuid NOT NULL,
    field           text NOT NULL,
    old_value       text,
    new_value       text,
    -- Set when an erasure cleared old_value and new_value.
    redacted        boolean NOT NULL DEFAULT false,
    changed_by      text NOT NULL,
    changed_by_org  text NOT NULL REFERENCES organizations (code),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    request_id      text
);
COMMENT ON TABLE change_log IS 'One row per changed field of any register entity: the "information about changes to these data" of the privacy notice.';
CREATE INDEX change_log_entity_idx ON change_log (entity, entity_id, changed_at);
CREATE INDEX change_log_changed_by_org_idx ON change_log (changed_by_org);

CREATE TABLE data_subject_requests (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind                 text NOT NULL CHECK (kind IN ('ACCESS', 'RECTIFICATION', 'ERASURE', 'RESTRICTION', 'OBJECTION', 'MARKETING_OBJECTION')),
    contact_id           uuid REFERENCES contacts (id),
    -- The identifying facts the person gave, when no contact could be matched.
    subject_description  text,
    received_by          text NOT NULL REFERENCES organizations (code),
    received_at          timestamptz NOT NULL DEFAULT now(),
    due_at               date NOT NULL,
    extended_due_at      date,
    extension_reason     text,
    status               text NOT NULL DEFAULT 'RECEIVED' CHECK (status IN ('RECEIVED', 'IN_PROGRESS', 'COMPLETED', 'REJECTED')),
    resolution           text,
    resolved_at          timestamptz,
    handled_by           text,
    handled_by_org       text REFERENCES organizations (code),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dsr_subject CHECK (contact_id IS NOT NULL OR subject_description IS NOT NULL),
    CONSTRAINT dsr_extension CHECK ((extended_due_at IS NULL) = (extension_reason IS NULL))
);
COMMENT ON TABLE data_subject_requests IS 'Requests by data subjects under GDPR arts. 15-21, handled jointly by every controller; due one calendar month after receipt.';
CREATE INDEX dsr_contact_id_idx ON data_subject_requests (contact_id);
CREATE INDEX dsr_received_by_idx ON data_subject_requests (received_by);
CREATE INDEX dsr_handled_by_org_idx ON data_subject_requests (handled_by_org);
CREATE INDEX dsr_status_due_idx ON data_subject_requests (status, due_at);
CREATE INDEX dsr_created_at_id_idx ON data_subject_requests (created_at, id);
