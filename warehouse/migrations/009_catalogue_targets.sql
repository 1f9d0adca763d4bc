-- Targets with a traffic-light rule: green at or beyond the target (by the indicator's
-- direction), amber within target_amber_margin of it, red beyond; and where the target comes from.
alter table ref.indicator_catalogue add column target_amber_margin double;
alter table ref.indicator_catalogue add column target_source varchar;
