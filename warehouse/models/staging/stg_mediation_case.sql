-- Accepted mediation cases of one batch ($batch_id), typed. Quarantined rows are left out.
with source as (
    select r.* from raw.mediation_case r
    where r._batch_id = $batch_id
      and not exists (
          select 1 from audit.quarantine q
          where q.batch_id = r._batch_id and q.table_name = 'mediation_case'
            and q.source_file = r._source_file and q.row_number = r._row_number)
),
typed as (
    select
        case_id, cast(accepted_date as date) as accepted_date, mediation_body, division_code,
        township_code, dispute_type, cast(persons_involved as integer) as persons_involved,
        is_joint_mediation = '是' as is_joint_mediation, outcome,
        cast(concluded_date as date) as concluded_date, agreement_form,
        cast(agreement_amount_yuan as decimal(18, 2)) as agreement_amount_yuan,
        performance_status, cast(follow_up_date as date) as follow_up_date,
        is_judicially_confirmed = '是' as is_judicially_confirmed,
        is_voided = '是' as is_voided, party_id_key,
        cast(source_modified_at as timestamp) as source_modified_at
    from source
)
select * from typed
