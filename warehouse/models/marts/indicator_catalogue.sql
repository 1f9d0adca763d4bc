-- model: mart.indicator_catalogue
-- materialized: table
-- reads: ref.indicator_catalogue
-- grain: indicator_code
-- The indicator catalogue as analysts read it (warehouse/indicator_catalogue.yaml, loaded into
-- ref.indicator_catalogue by warehouse/compute.py), in the catalogue's order.
select * exclude (sort_order)
from ref.indicator_catalogue
order by sort_order
