//! Tenant isolation enforced by the engine: [`TenantScoped`] wraps any table and returns only the rows
//! of one tenant, whatever the query does with it — joins, subqueries, aggregates, `LIMIT`. The
//! predicate is planned as a physical filter directly above the wrapped scan (it is also offered to the
//! scan for pruning, but never trusted to it), so no SQL text is ever concatenated and no optimizer rule
//! can move a user's expression below it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;

/// One table seen by one tenant.
#[derive(Debug)]
pub struct TenantScoped {
    inner: Arc<dyn TableProvider>,
    column: String,
    /// The tenant a session sees; several for the gold refresh, which recomputes a set of tenants.
    tenants: Vec<ScalarValue>,
}

impl TenantScoped {
    /// Restricts `inner` to the rows whose `column` equals `tenant`. `None` when the table has no
    /// such column (the caller must then not expose the table at all).
    pub fn new(inner: Arc<dyn TableProvider>, column: &str, tenant: ScalarValue) -> Option<Self> {
        Self::any_of(inner, column, vec![tenant])
    }

    /// Restricts `inner` to the rows whose `column` is one of `tenants`.
    pub fn any_of(inner: Arc<dyn TableProvider>, column: &str, tenants: Vec<ScalarValue>) -> Option<Self> {
        inner.schema().index_of(column).ok()?;
        Some(TenantScoped { inner, column: column.to_owned(), tenants })
    }

    fn predicate(&self) -> Expr {
        match self.tenants.as_slice() {
            [] => lit(false),
            [one] => col(self.column.as_str()).eq(lit(one.clone())),
            many => col(self.column.as_str()).in_list(many.iter().cloned().map(lit).collect(), false),
        }
    }
}

#[async_trait]
impl TableProvider for TenantScoped {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    /// The wrapped table's type: clients list these as the tables they are (psql's `\dt`, JDBC's
    /// `getTables`), even though every scan is restricted.
    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    /// The user's filters may be pushed into the scan for pruning; they are re-applied above it, and so
    /// is the tenant predicate.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.inner.schema();
        let tenant_index = schema.index_of(&self.column)?;
        // Read the requested columns plus the tenant column, which the filter needs.
        let mut read: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        if !read.contains(&tenant_index) {
            read.push(tenant_index);
        }
        let mut pushed = filters.to_vec();
        pushed.push(self.predicate());
        let scan = self.inner.scan(state, Some(&read), &pushed, None).await?;

        let scanned = scan.schema();
        let df_schema = DFSchema::try_from(scanned.as_ref().clone())?;
        let predicate = state.create_physical_expr(self.predicate(), &df_schema)?;
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);

        // Back to exactly the columns asked for, in their order.
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        if wanted.len() != read.len() {
            let exprs: Vec<(Arc<dyn datafusion::physical_plan::PhysicalExpr>, String)> = wanted
                .iter()
                .enumerate()
                .map(|(i, &field)| {
                    let name = schema.field(field).name().clone();
                    (Arc::new(Column::new(&name, i)) as _, name)
                })
                .collect();
            plan = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        }
        if let Some(n) = limit {
            plan = Arc::new(GlobalLimitExec::new(plan, 0, Some(n)));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn table(name_col: &str) -> Arc<dyn TableProvider> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(name_col, DataType::Utf8, true),
            Field::new("tenant_id", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
                Arc::new(StringArray::from(vec!["a1", "a2", "b1", "b2", "b3"])),
                Arc::new(StringArray::from(vec!["A", "A", "B", "B", "B"])),
            ],
        );
        let batch = batch.map_err(|e| e.to_string());
        let mem = batch.and_then(|b| MemTable::try_new(schema, vec![vec![b]]).map_err(|e| e.to_string()));
        Arc::new(mem.unwrap_or_else(|e| panic!("test table: {e}")))
    }

    async fn query(tenant: &str, sql: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        for (name, col) in [("accounts", "name"), ("deals", "title")] {
            let scoped = TenantScoped::new(table(col), "tenant_id", ScalarValue::from(tenant));
            let registered = scoped.map(|s| ctx.register_table(name, Arc::new(s)));
            assert!(matches!(registered, Some(Ok(_))), "register {name}");
        }
        let batches = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
            Err(e) => panic!("{sql}: {e}"),
        };
        let mut out = Vec::new();
        for b in &batches {
            let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap_or_else(|e| panic!("{e}"));
            let s = datafusion::arrow::array::AsArray::as_string::<i32>(&c);
            out.extend(s.iter().map(|v| v.unwrap_or("NULL").to_owned()));
        }
        out
    }

    #[tokio::test]
    async fn every_shape_of_query_sees_one_tenant() {
        assert_eq!(query("A", "SELECT name FROM accounts ORDER BY id").await, ["a1", "a2"]);
        assert_eq!(query("B", "SELECT count(*) FROM accounts").await, ["3"]);
        assert_eq!(query("A", "SELECT name FROM accounts WHERE tenant_id = 'B'").await, Vec::<String>::new());
        assert_eq!(query("A", "SELECT name FROM accounts WHERE tenant_id <> 'A' OR true").await.len(), 2);
        assert_eq!(query("B", "SELECT id FROM accounts ORDER BY id LIMIT 1").await, ["3"], "limit after the filter");
        assert_eq!(
            query("A", "SELECT a.name || '/' || d.title FROM accounts a JOIN deals d ON a.id = d.id ORDER BY 1").await,
            ["a1/a1", "a2/a2"]
        );
        assert_eq!(
            query("A", "SELECT count(*) FROM accounts WHERE id IN (SELECT id FROM deals WHERE tenant_id = 'B')").await,
            ["0"]
        );
        assert_eq!(
            query("B", "SELECT max(id) FROM (SELECT id FROM accounts UNION ALL SELECT id FROM deals)").await,
            ["5"]
        );
        assert_eq!(
            query("A", "SELECT max(id) FROM (SELECT id FROM accounts UNION ALL SELECT id FROM deals)").await,
            ["2"]
        );
    }

    async fn scalar(tenants: &[&str], sql: &str) -> String {
        let ctx = SessionContext::new();
        let tenants = tenants.iter().map(|t| ScalarValue::from(*t)).collect();
        let scoped = TenantScoped::any_of(table("name"), "tenant_id", tenants);
        assert!(scoped.is_some_and(|s| ctx.register_table("accounts", Arc::new(s)).is_ok()));
        let batches = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}")),
            Err(e) => panic!("{sql}: {e}"),
        };
        let value = batches.first().map(|b| ScalarValue::try_from_array(b.column(0), 0));
        match value {
            Some(Ok(v)) => v.to_string(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_set_of_tenants_sees_exactly_their_rows() {
        let sql = "SELECT string_agg(name, ',' ORDER BY name) FROM accounts";
        assert_eq!(scalar(&["A", "C"], sql).await, "a1,a2");
        assert_eq!(scalar(&["A", "B"], sql).await, "a1,a2,b1,b2,b3");
        assert_eq!(scalar(&[], "SELECT count(*) FROM accounts").await, "0", "an empty set sees nothing");
    }

    #[test]
    fn tables_without_the_column_are_refused() {
        let t = table("name");
        assert!(TenantScoped::new(t, "owner_id", ScalarValue::from("A")).is_none());
    }
}
