-- core: typed facts with history. A record is versioned by its business key: a changed record
-- closes the old version (valid_to = load time) and opens a new one; voided records are marked.
-- valid_from/valid_to are the warehouse's load times; source_modified_at is the source's own.
create table core.enforcement_act (
    act_id varchar not null, act_type varchar not null, acting_body_name varchar,
    acting_body_credit_code varchar, supporting_department varchar, division_code varchar,
    township_code varchar not null, inspection_date date, inspection_method varchar,
    inspection_result varchar, filed_date date, case_origin varchar, is_major_case boolean,
    is_legal_reviewed boolean, legal_review_date date, is_collective_decision boolean,
    decision_number varchar, decision_date date, penalty_kinds varchar[],
    fine_amount_yuan decimal(18, 2), confiscated_amount_yuan decimal(18, 2),
    is_not_penalised boolean, not_penalised_reason varchar, closed_date date,
    published_date date, officer_certificate_keys varchar[], officer_count integer,
    entry_channel varchar, is_voided boolean not null, party_type varchar, party_id_key varchar,
    source_modified_at timestamp,
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);

create table core.mediation_case (
    case_id varchar not null, accepted_date date not null, mediation_body varchar,
    division_code varchar, township_code varchar not null, dispute_type varchar,
    persons_involved integer, is_joint_mediation boolean, outcome varchar,
    concluded_date date, agreement_form varchar, agreement_amount_yuan decimal(18, 2),
    performance_status varchar, follow_up_date date, is_judicially_confirmed boolean,
    is_voided boolean not null, party_id_key varchar, source_modified_at timestamp,
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);

create table core.training_session (
    township_code varchar not null, session_id varchar not null, session_date date not null,
    session_type varchar not null, topic varchar, organiser varchar, hours decimal(6, 2),
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);

create table core.training_attendance (
    township_code varchar not null, session_id varchar not null, person_key varchar not null,
    staff_number_key varchar, unit varchar, is_leading_cadre boolean, is_officer boolean,
    test_score decimal(6, 2), is_passed boolean,
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);

create table core.training_staff (
    township_code varchar not null, roster_year integer not null, person_key varchar not null,
    staff_number_key varchar, unit varchar, post varchar, is_officer boolean,
    certificate_key varchar, certificate_valid_until date,
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);

create table core.annual_return_item (
    township_code varchar not null, report_year integer not null, item_code varchar not null,
    item_name varchar, value_number decimal(18, 2) not null, qualifier varchar,
    filled_date date,
    row_hash varchar not null, batch_id varchar not null,
    valid_from timestamp not null, valid_to timestamp
);
