//! `/v1/tasks`: activities — calls, emails, meetings and to-dos with due dates, status and SLA.

use chrono::{DateTime, Utc};
use orbas_oltp::model::{TaskId, TaskStatus, UserId};
use orbas_oltp::repo::tasks::{self, NewTask, Task, TaskFilter, TaskPatch};
use serde::Deserialize;

/// Filters of `GET /v1/tasks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    pub owner_id: Option<UserId>,
    pub status: Option<TaskStatus>,
    /// Only tasks due before this instant (RFC 3339).
    pub due_before: Option<DateTime<Utc>>,
    /// Page size, 1..=500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub after: Option<uuid::Uuid>,
}

crate::repo_resource!(Tasks {
    name: "tasks",
    entity: "task",
    repo: tasks,
    id: TaskId,
    record: Task,
    new: NewTask,
    patch: TaskPatch,
    query: TaskQuery,
    filter: |q, owners| TaskFilter {
        owner_id: q.owner_id,
        owned_by_any: owners,
        status: q.status,
        due_before: q.due_before
    }
});

crate::crud_handlers!(
    resource = Tasks,
    tag = "tasks",
    collection = "/v1/tasks",
    item = "/v1/tasks/{id}",
    record = Task,
    new = NewTask,
    patch = TaskPatch,
    filter = TaskQuery
);
