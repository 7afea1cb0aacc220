// @generated automatically by Diesel CLI.

diesel::table! {
    audit_archives (month) {
        month -> Date,
        events -> Int8,
        first_seq -> Int8,
        last_seq -> Int8,
        prev_hash -> Bytea,
        last_hash -> Bytea,
        file_name -> Text,
        file_sha256 -> Bytea,
        archived_at -> Timestamptz,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> Int8,
        id -> Uuid,
        occurred_at -> Timestamptz,
        recorded_at -> Timestamptz,
        request_id -> Text,
        trace_id -> Nullable<Text>,
        actor_sub -> Text,
        actor_org -> Text,
        actor_roles -> Array<Nullable<Text>>,
        actor_country -> Nullable<Text>,
        purpose -> Text,
        action -> Text,
        resource_type -> Text,
        resource_set -> Bytea,
        fields -> Array<Nullable<Text>>,
        field_classes -> Array<Nullable<Text>>,
        allowed -> Bool,
        rules -> Array<Nullable<Text>>,
        policy_version -> Text,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

diesel::table! {
    audit_resource_sets (month, digest) {
        month -> Date,
        digest -> Bytea,
        ids -> Array<Nullable<Uuid>>,
    }
}

diesel::table! {
    change_log (id) {
        id -> Int8,
        entity -> Text,
        entity_id -> Uuid,
        field -> Text,
        old_value -> Nullable<Text>,
        new_value -> Nullable<Text>,
        redacted -> Bool,
        changed_by -> Text,
        changed_by_org -> Text,
        changed_at -> Timestamptz,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    companies (id) {
        id -> Uuid,
        business_id -> Nullable<Text>,
        name -> Nullable<Text>,
        company_form -> Text,
        industry_code -> Nullable<Text>,
        municipality -> Nullable<Text>,
        country -> Text,
        website -> Nullable<Text>,
        registered_by -> Text,
        legal_basis -> Text,
        source -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_processed_at -> Timestamptz,
        legal_hold -> Bool,
        legal_hold_reason -> Nullable<Text>,
        erased_at -> Nullable<Timestamptz>,
        erased_by -> Nullable<Text>,
        erased_by_org -> Nullable<Text>,
    }
}

diesel::table! {
    company_counts (id) {
        id -> Int8,
        in_sector -> Bool,
        erased -> Bool,
        sole_trader -> Bool,
        registered_by -> Text,
        n -> Int4,
    }
}

diesel::table! {
    company_confidential (id) {
        id -> Uuid,
        company_id -> Uuid,
        registered_by -> Text,
        turnover_eur -> Nullable<Numeric>,
        employee_count -> Nullable<Int4>,
        risk_rating -> Nullable<Text>,
        funding_decisions -> Nullable<Text>,
        notes -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        in_sector -> Bool,
    }
}

diesel::table! {
    contact_counts (id) {
        id -> Int8,
        restricted -> Bool,
        objection_pending -> Bool,
        marketing_objection -> Bool,
        in_sector -> Bool,
        erased -> Bool,
        registered_by -> Text,
        n -> Int4,
    }
}

diesel::table! {
    contacts (id) {
        id -> Uuid,
        company_id -> Uuid,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        home_country -> Nullable<Text>,
        home_municipality -> Nullable<Text>,
        postal_address -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        title -> Nullable<Text>,
        role_in_company -> Nullable<Text>,
        nickname -> Nullable<Text>,
        native_name -> Nullable<Text>,
        native_address -> Nullable<Text>,
        native_title -> Nullable<Text>,
        work_country -> Nullable<Text>,
        industry -> Nullable<Text>,
        investment_profile -> Nullable<Text>,
        expertise_level -> Nullable<Text>,
        job_description -> Nullable<Text>,
        other_description -> Nullable<Text>,
        registered_by -> Text,
        legal_basis -> Text,
        source -> Text,
        restricted -> Bool,
        objection_pending -> Bool,
        marketing_objection -> Bool,
        legal_hold -> Bool,
        legal_hold_reason -> Nullable<Text>,
        last_processed_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        erased_at -> Nullable<Timestamptz>,
        erased_by -> Nullable<Text>,
        erased_by_org -> Nullable<Text>,
        in_sector -> Bool,
    }
}

diesel::table! {
    data_subject_requests (id) {
        id -> Uuid,
        kind -> Text,
        contact_id -> Nullable<Uuid>,
        subject_description -> Nullable<Text>,
        received_by -> Text,
        received_at -> Timestamptz,
        due_at -> Date,
        extended_due_at -> Nullable<Date>,
        extension_reason -> Nullable<Text>,
        status -> Text,
        resolution -> Nullable<Text>,
        resolved_at -> Nullable<Timestamptz>,
        handled_by -> Nullable<Text>,
        handled_by_org -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (org, sub, key) {
        org -> Text,
        sub -> Text,
        key -> Text,
        operation -> Text,
        request_hash -> Bytea,
        resource_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    organizations (code) {
        code -> Text,
        name_en -> Text,
        name_fi -> Text,
        kind -> Text,
        business_id -> Nullable<Text>,
    }
}

diesel::table! {
    service_counts (id) {
        id -> Int8,
        in_sector -> Bool,
        provider -> Text,
        n -> Int4,
    }
}

diesel::table! {
    services (id) {
        id -> Uuid,
        kind -> Text,
        title -> Text,
        provider -> Text,
        company_id -> Uuid,
        contact_id -> Nullable<Uuid>,
        status -> Text,
        requested_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        invoiced_at -> Nullable<Timestamptz>,
        legal_basis -> Text,
        source -> Text,
        amount_eur -> Nullable<Numeric>,
        notes -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        in_sector -> Bool,
    }
}

diesel::joinable!(change_log -> organizations (changed_by_org));
diesel::joinable!(company_confidential -> companies (company_id));
diesel::joinable!(company_confidential -> organizations (registered_by));
diesel::joinable!(contacts -> companies (company_id));
diesel::joinable!(data_subject_requests -> contacts (contact_id));
diesel::joinable!(idempotency_keys -> organizations (org));
diesel::joinable!(services -> companies (company_id));
diesel::joinable!(services -> contacts (contact_id));
diesel::joinable!(services -> organizations (provider));

diesel::allow_tables_to_appear_in_same_query!(
    audit_archives,
    audit_events,
    audit_resource_sets,
    change_log,
    companies,
    company_confidential,
    company_counts,
    contact_counts,
    contacts,
    data_subject_requests,
    idempotency_keys,
    organizations,
    service_counts,
    services,
);
