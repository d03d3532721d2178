//! `/v1/tasks`: activities — calls, emails, meetings and to-dos with due dates, status and SLA.

use chrono::{DateTime, Utc};
use orbas_oltp::model::{
    AccountId, ContactId, LeadId, OpportunityId, Priority, TaskId, TaskKind, TaskStatus, TicketId, UserId,
};
use orbas_oltp::repo::tasks::{self, NewTask, Task, TaskPatch};

crate::list_query!(
    /// Filters of `GET /v1/tasks`.
    TaskQuery {
        owner_id: UserId,
        status: TaskStatus,
        kind: TaskKind,
        priority: Priority,
        account_id: AccountId,
        contact_id: ContactId,
        lead_id: LeadId,
        opportunity_id: OpportunityId,
        ticket_id: TicketId,
        /// Only tasks due before this instant (RFC 3339).
        due_before: DateTime<Utc>,
    }
);

crate::resource!(Tasks {
    name: "tasks",
    table: tasks::TABLE,
    record: Task,
    new: NewTask,
    patch: TaskPatch,
    query: TaskQuery,
    owner: owner_id,
    update: |c, _p, id, patch| tasks::update(c, TaskId(id), patch),
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
