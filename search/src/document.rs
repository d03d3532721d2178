//! What a CRM row becomes in the index: the mapping from a change event's row (`after`, the table's
//! columns as the change-event contract carries them) to a [`SearchDoc`] — id, type, tenant, the texts
//! in three weighted tiers (title > names/e-mail > body), facets, and the visibility fields the
//! permission check of `orbas_oltp` needs (the owner; the type names the permission resource).
//!
//! Pure functions, no I/O. A row that lacks its id or tenant maps to nothing (never a panic): the
//! indexer skips it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kinds of records the index holds, one per indexed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocType {
    Account,
    Contact,
    Lead,
    Opportunity,
    Ticket,
    /// A message of a ticket; linked to it by [`SearchDoc::parent`], visible like the ticket.
    TicketMessage,
    KnowledgeArticle,
    Document,
    /// A version of a document: its extracted text; linked to the document by [`SearchDoc::parent`],
    /// visible like documents.
    DocumentVersion,
    Employee,
}

impl DocType {
    pub const ALL: [DocType; 10] = [
        DocType::Account,
        DocType::Contact,
        DocType::Lead,
        DocType::Opportunity,
        DocType::Ticket,
        DocType::TicketMessage,
        DocType::KnowledgeArticle,
        DocType::Document,
        DocType::DocumentVersion,
        DocType::Employee,
    ];

    /// The name in the API, the index and facets.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Account => "account",
            DocType::Contact => "contact",
            DocType::Lead => "lead",
            DocType::Opportunity => "opportunity",
            DocType::Ticket => "ticket",
            DocType::TicketMessage => "ticket_message",
            DocType::KnowledgeArticle => "knowledge_article",
            DocType::Document => "document",
            DocType::DocumentVersion => "document_version",
            DocType::Employee => "employee",
        }
    }

    /// The type named `s` (as [`Self::as_str`] spells it).
    pub fn parse(s: &str) -> Option<DocType> {
        DocType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The CRM table (in schema `public`) the type is read from.
    pub fn table(self) -> &'static str {
        match self {
            DocType::Account => "accounts",
            DocType::Contact => "contacts",
            DocType::Lead => "leads",
            DocType::Opportunity => "opportunities",
            DocType::Ticket => "tickets",
            DocType::TicketMessage => "ticket_messages",
            DocType::KnowledgeArticle => "knowledge_articles",
            DocType::Document => "documents",
            DocType::DocumentVersion => "document_versions",
            DocType::Employee => "employees",
        }
    }

    /// The type of a table's rows.
    pub fn of_table(table: &str) -> Option<DocType> {
        DocType::ALL.into_iter().find(|t| t.table() == table)
    }

    /// The permission resource (`orbas_oltp::model::RESOURCES`) reading this type needs.
    pub fn resource(self) -> &'static str {
        match self {
            DocType::TicketMessage => "tickets",
            DocType::DocumentVersion => "documents",
            other => other.table(),
        }
    }
}

impl std::fmt::Display for DocType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record as the index holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDoc {
    /// The row's primary key (a UUID, unique across tables).
    pub id: String,
    pub doc_type: DocType,
    pub tenant_id: String,
    /// Highest-weighted text: the record's name or subject.
    pub title: String,
    /// Middle tier: people's and companies' names, e-mail addresses, numbers, slugs.
    pub names: String,
    /// Lowest tier: descriptions, message and article bodies.
    pub body: String,
    /// The owning user (`owner_id`, an article's author): what own/team read scopes compare with.
    pub owner_id: Option<String>,
    /// Pipeline or lifecycle stage (opportunities: the stage id; accounts, contacts: lifecycle stage).
    pub stage: Option<String>,
    pub status: Option<String>,
    /// The record this one belongs to (a ticket message's ticket).
    pub parent_id: Option<String>,
    /// `updated_at` as the row carries it (ISO-8601).
    pub updated_at: Option<String>,
}

impl SearchDoc {
    /// A document with no text and none of the optional fields (set them after).
    pub fn new(id: impl Into<String>, doc_type: DocType, tenant_id: impl Into<String>) -> Self {
        SearchDoc {
            id: id.into(),
            doc_type,
            tenant_id: tenant_id.into(),
            title: String::new(),
            names: String::new(),
            body: String::new(),
            owner_id: None,
            stage: None,
            status: None,
            parent_id: None,
            updated_at: None,
        }
    }

    /// The text the sentence encoder embeds: title, names and body.
    pub fn embedding_text(&self) -> String {
        [self.title.as_str(), self.names.as_str(), self.body.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(". ")
    }
}

/// A column's value as text (`None` for null or absent; numbers and booleans printed).
fn text(row: &Map<String, Value>, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Non-empty values of `columns`, joined by spaces.
fn join(row: &Map<String, Value>, columns: &[&str]) -> String {
    columns.iter().filter_map(|c| text(row, c)).collect::<Vec<_>>().join(" ")
}

/// The search document of a row of `table`; `None` for tables the index does not hold and rows
/// without an id or tenant.
pub fn from_row(table: &str, row: &Map<String, Value>) -> Option<SearchDoc> {
    let doc_type = DocType::of_table(table)?;
    let mut doc = SearchDoc {
        id: text(row, "id")?,
        doc_type,
        tenant_id: text(row, "tenant_id")?,
        title: String::new(),
        names: String::new(),
        body: String::new(),
        owner_id: text(row, "owner_id"),
        stage: None,
        status: text(row, "status"),
        parent_id: None,
        updated_at: text(row, "updated_at"),
    };
    let person = || join(row, &["first_name", "last_name"]);
    match doc_type {
        DocType::Account => {
            doc.title = join(row, &["name"]);
            doc.names = join(row, &["domain", "website", "phone"]);
            doc.body = join(row, &["description", "industry", "billing_city"]);
            doc.stage = text(row, "lifecycle_stage");
        }
        DocType::Contact => {
            doc.title = person();
            doc.names = join(row, &["email", "phone", "title"]);
            doc.stage = text(row, "lifecycle_stage");
        }
        DocType::Lead => {
            doc.title = person();
            doc.names = join(row, &["email", "company", "phone"]);
            doc.body = join(row, &["title", "industry"]);
        }
        DocType::Opportunity => {
            doc.title = join(row, &["name"]);
            doc.body = join(row, &["next_step", "lost_reason"]);
            doc.stage = text(row, "stage_id");
        }
        DocType::Ticket => {
            doc.title = join(row, &["subject"]);
            doc.names = join(row, &["number"]);
            doc.body = join(row, &["description", "category"]);
        }
        DocType::TicketMessage => {
            doc.body = join(row, &["body"]);
            doc.parent_id = text(row, "ticket_id");
            // Visible like its ticket; a message has no owner of its own.
            doc.owner_id = None;
        }
        DocType::KnowledgeArticle => {
            doc.title = join(row, &["title"]);
            doc.names = join(row, &["slug", "category"]);
            doc.body = join(row, &["body"]);
            doc.owner_id = text(row, "author_id");
        }
        DocType::Document => {
            doc.title = join(row, &["title"]);
            doc.names = join(row, &["kind"]);
        }
        DocType::DocumentVersion => {
            doc.names = join(row, &["content_type"]);
            doc.body = join(row, &["body"]);
            doc.parent_id = text(row, "document_id");
            // Visible like documents; a version's author is not the document's owner.
            doc.owner_id = None;
        }
        DocType::Employee => {
            doc.title = join(row, &["full_name"]);
            doc.names = join(row, &["email", "title"]);
        }
    }
    Some(doc)
}

/// The id of the row a change is about: `id` of `after`, else of `before`, else of the message key.
pub fn row_id(
    after: Option<&Map<String, Value>>,
    before: Option<&Map<String, Value>>,
    key: Option<&Map<String, Value>>,
) -> Option<String> {
    [after, before, key].into_iter().flatten().find_map(|r| text(r, "id"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn contacts_map_names_email_and_visibility() {
        let r = row(json!({
            "id": "c1", "tenant_id": "t1", "owner_id": "u1", "first_name": "Ada", "last_name": "Lovelace",
            "email": "ada@analytical.io", "phone": null, "title": "CTO", "lifecycle_stage": "customer",
            "updated_at": "2026-12-01T10:00:00Z"
        }));
        let d = from_row("contacts", &r).expect("a contact maps");
        assert_eq!(d.doc_type, DocType::Contact);
        assert_eq!(d.title, "Ada Lovelace");
        assert_eq!(d.names, "ada@analytical.io CTO");
        assert_eq!(d.owner_id.as_deref(), Some("u1"));
        assert_eq!(d.stage.as_deref(), Some("customer"));
        assert_eq!(d.updated_at.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(d.embedding_text(), "Ada Lovelace. ada@analytical.io CTO");
    }

    #[test]
    fn every_indexed_table_maps_and_others_do_not() {
        let r = row(json!({"id": "x", "tenant_id": "t", "name": "n", "subject": "s", "title": "t",
                           "full_name": "f", "body": "b", "ticket_id": "k", "author_id": "a", "owner_id": "o"}));
        for t in DocType::ALL {
            let d = from_row(t.table(), &r).expect("maps");
            assert_eq!(d.doc_type, t);
            assert_eq!(DocType::parse(t.as_str()), Some(t));
        }
        assert!(from_row("invoices", &r).is_none());
        let m = from_row("ticket_messages", &r).expect("maps");
        assert_eq!((m.parent_id.as_deref(), m.owner_id.as_deref()), (Some("k"), None));
        assert_eq!(from_row("knowledge_articles", &r).and_then(|d| d.owner_id).as_deref(), Some("a"));
        assert_eq!(DocType::TicketMessage.resource(), "tickets");
        let v = row(json!({"id": "v", "tenant_id": "t", "document_id": "d", "version": 2, "created_by": "u",
                           "content_type": "application/pdf", "body": "Master services agreement, renewal terms"}));
        let v = from_row("document_versions", &v).expect("maps");
        assert_eq!((v.parent_id.as_deref(), v.owner_id.as_deref()), (Some("d"), None));
        assert_eq!(
            (v.names.as_str(), v.body.as_str()),
            ("application/pdf", "Master services agreement, renewal terms")
        );
        assert_eq!(DocType::DocumentVersion.resource(), "documents");
    }

    #[test]
    fn rows_without_id_or_tenant_map_to_nothing() {
        assert!(from_row("accounts", &row(json!({"tenant_id": "t", "name": "n"}))).is_none());
        assert!(from_row("accounts", &row(json!({"id": "i", "name": "n"}))).is_none());
        assert!(from_row("accounts", &row(json!({"id": 5, "tenant_id": null}))).is_none());
    }

    #[test]
    fn row_id_falls_back_to_before_and_key() {
        let k = row(json!({"id": "k"}));
        let b = row(json!({"id": "b"}));
        assert_eq!(row_id(None, Some(&b), Some(&k)).as_deref(), Some("b"));
        assert_eq!(row_id(None, None, Some(&k)).as_deref(), Some("k"));
        assert_eq!(row_id(None, None, None), None);
    }
}
