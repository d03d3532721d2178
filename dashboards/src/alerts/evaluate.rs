//! One recipient's breaches of one alert for one window: the KPI per group through the KPI compiler and
//! the engine (as the recipient sees the lake), the goal per group (constant, another KPI, or the goal
//! query), the groups narrowed to the people the recipient answers for, and the comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{AlertSpec, Goal, Window, bind_window};
use crate::engine::{Engine, Table};
use crate::error::{Error, FieldError, Result};
use crate::kpi::{Grain, KpiDefinition, KpiQuery};
use crate::viewer::Viewer;

/// One group out of line.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Breach {
    /// The group's dimension value (`None`: the KPI's total).
    pub group: Option<String>,
    pub value: f64,
    /// The goal it was compared with (factor applied).
    pub goal: f64,
}

/// What a check found for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Groups compared (with both a value and a goal).
    pub compared: usize,
    pub breaches: Vec<Breach>,
}

/// Values by group key (`""` for the total); rows whose group is NULL are left out.
fn by_group(t: &Table, group: Option<&str>, value: &str) -> Result<BTreeMap<String, f64>> {
    let col = |name: &str| {
        t.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::Invalid(vec![FieldError {
                field: "goal".into(),
                message: format!("the result has no column {name:?} (it has {:?})", t.columns),
            }])
        })
    };
    let v = col(value)?;
    let g = group.map(col).transpose()?;
    let mut out = BTreeMap::new();
    for row in &t.rows {
        let key = match g {
            None => String::new(),
            Some(i) => match row.get(i) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::Bool(b)) => b.to_string(),
                _ => continue,
            },
        };
        if let Some(x) = row.get(v).and_then(serde_json::Value::as_f64) {
            *out.entry(key).or_insert(0.0) += x;
        }
    }
    Ok(out)
}

/// `kpi` over the window, by `group` (its total when none).
async fn kpi_values(
    engine: &Engine,
    viewer: &Viewer,
    kpi: &KpiDefinition,
    group: Option<&str>,
    w: Window,
) -> Result<BTreeMap<String, f64>> {
    let q = KpiQuery {
        from: Some(w.from),
        until: Some(w.until),
        grain: Some(Grain::Total),
        group_by: group.map(str::to_owned).into_iter().collect(),
        filters: BTreeMap::new(),
    };
    let (_, answer) = engine.run_kpi(viewer, kpi, &q).await?;
    by_group(&answer.table, group, "value")
}

/// The goal per group (factor not applied); `Err(constant)` when the goal is the same for all.
async fn goals(
    engine: &Engine,
    viewer: &Viewer,
    spec: &AlertSpec,
    goal_kpi: Option<&KpiDefinition>,
    w: Window,
) -> Result<std::result::Result<BTreeMap<String, f64>, f64>> {
    let group = spec.group_by.as_deref();
    Ok(match (&spec.goal, goal_kpi) {
        (Goal::Constant { value }, _) => Err(*value),
        (Goal::Kpi { .. }, Some(k)) => Ok(kpi_values(engine, viewer, k, group, w).await?),
        (Goal::Kpi { kpi }, None) => return Err(Error::Corrupt(format!("the goal KPI {kpi} was not loaded"))),
        (Goal::Sql { sql }, _) => {
            let answer = engine.run_sql(viewer, &bind_window(sql, w.from, w.until)).await?;
            Ok(by_group(&answer.table, group, "goal")?)
        }
    })
}

/// Whether `kpi`'s dimension `group` is a person (its column names a user).
pub fn is_person(kpi: &KpiDefinition, group: Option<&str>) -> bool {
    group
        .and_then(|g| kpi.dimensions.iter().find(|d| d.name == g))
        .is_some_and(|d| d.column == "owner_id" || d.column == "user_id")
}

/// The breaches of `spec` over `w` as `viewer` may see them (see the module docs).
pub async fn evaluate(
    engine: &Engine,
    viewer: &Viewer,
    spec: &AlertSpec,
    kpi: &KpiDefinition,
    goal_kpi: Option<&KpiDefinition>,
    w: Window,
) -> Result<Evaluation> {
    let group = spec.group_by.as_deref();
    let values = kpi_values(engine, viewer, kpi, group, w).await?;
    let goals = goals(engine, viewer, spec, goal_kpi, w).await?;
    let mut keys: BTreeSet<String> = values.keys().cloned().collect();
    if let Ok(g) = &goals
        && spec.missing_as_zero
    {
        keys.extend(g.keys().cloned());
    }
    if group.is_none() {
        // The total is one value, also when no row matched.
        keys.insert(String::new());
    }
    if is_person(kpi, group)
        && let Some(people) = viewer.people_in_reach(&kpi.source)
    {
        let reach: BTreeSet<String> = people.iter().map(ToString::to_string).collect();
        keys.retain(|k| reach.contains(k));
    }
    let mut compared = 0;
    let mut breaches = Vec::new();
    for key in keys {
        let value = match values.get(&key) {
            Some(v) => *v,
            None if spec.missing_as_zero => 0.0,
            None => continue,
        };
        let goal = match &goals {
            Err(constant) => *constant,
            Ok(g) => match g.get(&key) {
                Some(v) => *v,
                None => continue,
            },
        };
        let goal = goal * spec.factor;
        compared += 1;
        if spec.comparison.breached(value, goal) {
            breaches.push(Breach { group: group.map(|_| key), value, goal });
        }
    }
    Ok(Evaluation { compared, breaches })
}
