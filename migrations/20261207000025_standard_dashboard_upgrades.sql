-- Default dashboards follow the release for as long as nobody changes them, as standard KPIs do
-- (migration 24): `standard_digest` is the digest of the content the system last wrote to a default
-- dashboard (`orbas_dashboards::store::install_defaults`); NULL for a tenant's own dashboards.
ALTER TABLE dashboards ADD COLUMN standard_digest text;

-- Default dashboards installed before this column and never changed since (every change of a
-- dashboard or of one of its widgets moves the dashboard's `updated_at`): the next install takes
-- them as unchanged.
UPDATE dashboards SET standard_digest = 'unchanged since installed'
 WHERE owner_id IS NULL AND key IS NOT NULL AND updated_at = created_at;
