//! `/v1/employees`: the HR view of the tenant's people (admin-maintained).

use orbas_oltp::model::{DepartmentId, EmployeeId, EmployeeStatus, UserId};
use orbas_oltp::repo::people::{self, Employee, EmployeePatch, NewEmployee};

crate::list_query!(
    /// Filters of `GET /v1/employees`.
    EmployeeQuery {
        department_id: DepartmentId,
        manager_id: EmployeeId,
        user_id: UserId,
        status: EmployeeStatus,
        /// Exact email, case-insensitive.
        email: String,
    }
);

crate::resource!(Employees {
    name: "employees",
    table: people::EMPLOYEES,
    record: Employee,
    new: NewEmployee,
    patch: EmployeePatch,
    query: EmployeeQuery,
    owner: none,
});

crate::crud_handlers!(
    resource = Employees,
    tag = "employees",
    collection = "/v1/employees",
    item = "/v1/employees/{id}",
    record = Employee,
    new = NewEmployee,
    patch = EmployeePatch,
    filter = EmployeeQuery
);
