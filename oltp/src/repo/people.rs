//! The tenant's people: employees (the HR view, with or without a CRM login).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::table::{Filter, Op, Table, col, eq};
use crate::model::{DepartmentId, EmployeeId, EmployeeStatus, TenantId, UserId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Employee {
    pub id: EmployeeId,
    pub tenant_id: TenantId,
    /// The employee's CRM login, if they have one.
    pub user_id: Option<UserId>,
    pub department_id: Option<DepartmentId>,
    pub manager_id: Option<EmployeeId>,
    pub full_name: String,
    pub email: String,
    pub title: Option<String>,
    pub hire_date: NaiveDate,
    pub status: EmployeeStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployee {
    pub user_id: Option<UserId>,
    pub department_id: Option<DepartmentId>,
    pub manager_id: Option<EmployeeId>,
    pub full_name: String,
    #[schema(pattern = "^[^@\\s]+@[^@\\s]+$")]
    pub email: String,
    pub title: Option<String>,
    pub hire_date: NaiveDate,
    pub status: Option<EmployeeStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeePatch {
    pub user_id: Option<UserId>,
    pub department_id: Option<DepartmentId>,
    pub manager_id: Option<EmployeeId>,
    pub full_name: Option<String>,
    #[schema(pattern = "^[^@\\s]+@[^@\\s]+$")]
    pub email: Option<String>,
    pub title: Option<String>,
    pub status: Option<EmployeeStatus>,
}

pub const EMPLOYEES: Table = Table {
    name: "employees",
    entity: "employee",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "department_id",
        "manager_id",
        "full_name",
        "email",
        "title",
        "hire_date",
        "status",
        "created_at",
        "updated_at",
    ],
    owner: None,
    filters: &[
        eq("department_id", "uuid"),
        eq("manager_id", "uuid"),
        eq("user_id", "uuid"),
        eq("status", "text"),
        Filter { param: "email", column: col("email", "text"), op: Op::IEq },
    ],
    sorts: &[col("full_name", "text"), col("hire_date", "date"), col("created_at", "timestamptz")],
};
