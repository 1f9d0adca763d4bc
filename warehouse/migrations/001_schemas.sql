-- Layers of the working database (DESIGN.md): raw -> staging -> core -> mart; audit and ref beside.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists core;
create schema if not exists mart;
create schema if not exists audit;
create schema if not exists ref;
