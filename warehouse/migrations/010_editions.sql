-- Editions of a year's indicators: edition 1 at the year-end rebuild, then a new edition at every
-- later rebuild, each with a change log against the previous one. Insert-only: an edition is
-- never rewritten.
create table mart.indicator_edition (
    year integer not null,
    edition integer not null,
    built_at timestamp not null,
    batches_through timestamp,          -- the last batch (load time) the rebuild replayed
    compared_with varchar not null,     -- 'edition N' or 'nightly'
    changed_values integer not null,
    matches_nightly boolean not null,   -- the rebuild from raw equals the nightly values
    note_zh varchar not null,
    note_en varchar not null,
    primary key (year, edition)
);

create table mart.indicator_edition_value (
    edition integer not null,
    year integer not null, township_code varchar not null, township_name varchar, area_level varchar,
    indicator_code varchar not null, indicator_name_zh varchar, indicator_name_en varchar, unit varchar,
    kind varchar, value double, numerator decimal(18, 2), denominator decimal(18, 2), qualifier varchar,
    status varchar, rank_in_county integer, previous_value double, change_from_previous double,
    target_value double, gap_to_target double, traffic_light varchar,
    primary key (year, edition, township_code, indicator_code)
);

create table mart.indicator_edition_evidence (
    edition integer not null,
    year integer not null, county_code varchar, township_code varchar, indicator_code varchar,
    record_table varchar, record_id varchar, record_date date, numerator decimal(18, 2),
    denominator decimal(18, 2), measure double, qualifier varchar
);

create table mart.indicator_edition_change (
    year integer not null,
    edition integer not null,
    township_code varchar not null,
    indicator_code varchar not null,
    previous_value double,
    value double,
    change double,
    previous_qualifier varchar,
    qualifier varchar,
    records varchar[],                  -- record_table:record_id of the records whose contribution changed
    primary key (year, edition, township_code, indicator_code)
);
