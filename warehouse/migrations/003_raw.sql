-- raw: every parsed row of every batch as received (append-only), personal data already removed.
-- Columns are the canonical names of warehouse/sources/fields.yaml; values as delivered (text).
create table raw.enforcement_act (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, act_id varchar, act_type varchar, acting_body_name varchar,
    acting_body_credit_code varchar, supporting_department varchar, division_code varchar,
    inspection_date varchar, inspection_method varchar, inspection_result varchar,
    filed_date varchar, case_origin varchar, is_major_case varchar, is_legal_reviewed varchar,
    legal_review_date varchar, is_collective_decision varchar, decision_number varchar,
    decision_date varchar, penalty_kinds varchar[], fine_amount_yuan double,
    confiscated_amount_yuan double, is_not_penalised varchar, not_penalised_reason varchar,
    closed_date varchar, published_date varchar, officer_certificate_keys varchar[],
    officer_count integer, entry_channel varchar, source_modified_at varchar, is_voided varchar,
    party_type varchar, party_id_key varchar
);

create table raw.mediation_case (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, case_id varchar, accepted_date varchar, mediation_body varchar,
    division_code varchar, dispute_type varchar, persons_involved double,
    is_joint_mediation varchar, outcome varchar, concluded_date varchar, agreement_form varchar,
    agreement_amount_yuan double, performance_status varchar, follow_up_date varchar,
    is_judicially_confirmed varchar, source_modified_at varchar, is_voided varchar,
    party_id_key varchar
);

create table raw.training_session (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, session_id varchar, session_date varchar, session_type varchar,
    topic varchar, organiser varchar, hours double
);

create table raw.training_attendance (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, session_id varchar, staff_number_key varchar, person_key varchar,
    unit varchar, is_leading_cadre varchar, is_officer varchar, test_score double,
    is_passed varchar, session_found boolean
);

create table raw.training_staff (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, roster_year integer, staff_number_key varchar, person_key varchar,
    unit varchar, post varchar, is_officer varchar, certificate_key varchar,
    certificate_valid_until varchar
);

create table raw.annual_return_item (
    _batch_id varchar not null, _source_file varchar not null, _row_number integer not null,
    township_code varchar, report_year integer, item_code varchar, item_name varchar,
    value_text varchar, unit varchar, remark varchar, filled_date varchar,
    value_number double, qualifier varchar
);
