//! Synthetic CRM data generator (placeholder: being written).
