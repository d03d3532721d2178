-- Standard KPIs follow the release for as long as nobody changes them. Until now `orbas migrate`
-- installed a standard KPI once, by key: a tenant installed before a formula was corrected (e.g.
-- `nba_acceptance`, which now leaves out dismissals as already handled or not the rep's record)
-- kept the old formula for good.
--
-- `standard_digest` is the digest of the content the system last wrote to a standard KPI (name,
-- description, definition, unit, good_direction: see `orbas_oltp::repo::kpis::install_standard`);
-- NULL for a tenant's own KPIs. While a standard KPI's content still has that digest nobody has
-- changed it, and `orbas migrate` moves it to the release's content; one an admin changed keeps
-- its content.
ALTER TABLE kpi_definitions ADD COLUMN standard_digest text;

-- Standard KPIs installed before this column: never updated since their installation (the install
-- writes `created_at` and `updated_at` in one statement; every edit moves `updated_at`) means
-- unchanged.
UPDATE kpi_definitions
   SET standard_digest = md5(name || chr(31) || coalesce(description, '') || chr(31) || definition::text
                             || chr(31) || unit || chr(31) || good_direction)
 WHERE is_standard AND updated_at = created_at;
