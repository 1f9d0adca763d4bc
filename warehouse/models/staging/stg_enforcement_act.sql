-- Accepted enforcement acts of one batch ($batch_id), typed. Quarantined rows are left out.
with source as (
    select r.* from raw.enforcement_act r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'enforcement_act'
            and q.source_file = r._source_file and q.row_number = r._row_number)
),
typed as (
    select
        act_id, act_type, acting_body_name, acting_body_credit_code, supporting_department,
        division_code, township_code,
        cast(inspection_date as date) as inspection_date, inspection_method, inspection_result,
        cast(filed_date as date) as filed_date, case_origin,
        is_major_case = '是' as is_major_case,
        is_legal_reviewed = '是' as is_legal_reviewed,
        cast(legal_review_date as date) as legal_review_date,
        is_collective_decision = '是' as is_collective_decision,
        decision_number, cast(decision_date as date) as decision_date, penalty_kinds,
        cast(fine_amount_yuan as decimal(18, 2)) as fine_amount_yuan,
        cast(confiscated_amount_yuan as decimal(18, 2)) as confiscated_amount_yuan,
        is_not_penalised = '是' as is_not_penalised, not_penalised_reason,
        cast(closed_date as date) as closed_date, cast(published_date as date) as published_date,
        list_sort(officer_certificate_keys) as officer_certificate_keys, officer_count,
        entry_channel, is_voided = '是' as is_voided, party_type, party_id_key,
        cast(source_modified_at as timestamp) as source_modified_at
    from source
)
select * from typed
