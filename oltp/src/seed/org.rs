//! The tenant's organisation: territories by region, departments, users in a manager hierarchy (one
//! admin, regional managers, sales reps — most users —, analysts, support agents, read-only users),
//! and the roles they hold. Reps own a sub-territory; accounts are owned by reps of their region.

use rand::Rng;
use uuid::Uuid;

use super::ctx::{Cur, Tenant};
use super::rng::{self, SeedRng, chance, growth_fraction, pick, uniform};
use super::time::{DAY, Ms, Region};
use super::words::{self, FIRST_NAMES, LAST_NAMES, PLACES};
use crate::model::RoleKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserStatus {
    Active,
    Invited,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Invited => "invited",
            UserStatus::Disabled => "disabled",
        }
    }
}

#[derive(Debug)]
pub(crate) struct User {
    pub id: Uuid,
    pub role: RoleKey,
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub title: &'static str,
    pub manager: Option<usize>,
    pub region: Option<Region>,
    pub territory: Option<usize>,
    pub department: usize,
    pub status: UserStatus,
    pub created: Ms,
    /// When a disabled user left.
    pub left: Option<Ms>,
}

impl User {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

#[derive(Debug)]
pub(crate) struct Territory {
    pub id: Uuid,
    pub name: String,
    pub region: Region,
    pub parent: Option<usize>,
    /// Index into [`PLACES`] for sub-territories.
    pub place: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Department {
    pub id: Uuid,
    pub name: String,
    pub parent: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Org {
    pub roles: Vec<(RoleKey, Uuid)>,
    pub departments: Vec<Department>,
    pub territories: Vec<Territory>,
    pub users: Vec<User>,
    /// Covered regions with their share of accounts.
    pub regions: Vec<(Region, f64)>,
    pub reps_by_region: [Vec<usize>; 4],
    pub managers: Vec<usize>,
    pub support_agents: Vec<usize>,
    pub admin: usize,
    pub marketing: usize,
    pub analysts: Vec<usize>,
    pub dept: Departments,
    pub api_keys: Vec<ApiKey>,
}

/// An API key; the secret itself is never stored, only its SHA-256.
#[derive(Debug)]
pub(crate) struct ApiKey {
    pub id: Uuid,
    pub user: usize,
    pub created: Ms,
}

/// Who a user is when created: role, department, title.
struct Hire {
    role: RoleKey,
    department: usize,
    title: &'static str,
    manager: Option<usize>,
    region: Option<Region>,
    territory: Option<usize>,
    founding: bool,
}

impl Org {
    pub fn role_id(&self, role: RoleKey) -> Uuid {
        self.roles.iter().find(|(k, _)| *k == role).map(|(_, id)| *id).unwrap_or_default()
    }

    pub fn pick_region(&self, rng: &mut impl Rng) -> Region {
        rng::weighted(rng, &self.regions)
    }

    /// A rep of `region` who worked here at `at` (the region's first rep when nobody else did).
    pub fn rep_for(&self, rng: &mut impl Rng, region: Region, at: Ms) -> usize {
        let reps = &self.reps_by_region[region.index()];
        let eligible: Vec<usize> = reps
            .iter()
            .copied()
            .filter(|&u| {
                let user = &self.users[u];
                user.created <= at && user.status != UserStatus::Invited && user.left.is_none_or(|l| l > at)
            })
            .collect();
        match eligible.as_slice() {
            [] => reps.first().copied().unwrap_or(self.admin),
            list => pick(rng, list),
        }
    }

    pub fn build(t: &Tenant) -> Org {
        let mut rng = t.rng("org");
        let mut ids = t.ids("org");
        let roles = RoleKey::ALL.iter().map(|k| (*k, ids.at_millis(t.created as u64))).collect();
        let regions = covered_regions(t);
        let mut org = Org {
            roles,
            departments: Vec::new(),
            territories: Vec::new(),
            users: Vec::new(),
            regions,
            reps_by_region: Default::default(),
            managers: Vec::new(),
            support_agents: Vec::new(),
            admin: 0,
            marketing: 0,
            analysts: Vec::new(),
            dept: Departments::default(),
            api_keys: Vec::new(),
        };
        org.dept = org.build_departments(t, &mut ids);
        org.build_territories(t, &mut ids);
        let dept = org.dept;
        org.build_users(t, &mut rng, &dept);
        org.build_api_keys(t, &mut rng);
        org
    }

    fn build_api_keys(&mut self, t: &Tenant, rng: &mut SeedRng) {
        let mut ids = t.ids("api_keys");
        let owners: Vec<usize> = std::iter::once(self.admin).chain(self.analysts.iter().copied()).collect();
        for i in 0..2 + self.users.len() / 20 {
            let user = owners[i % owners.len()];
            let created = self.users[user].created.max(t.now - 400 * DAY) + rng.random_range(0..300 * DAY);
            let created = created.min(t.now - DAY);
            self.api_keys.push(ApiKey { id: ids.at_millis(created as u64), user, created });
        }
    }

    fn build_departments(&mut self, t: &Tenant, ids: &mut crate::model::IdGen<SeedRng>) -> Departments {
        let mut add = |org: &mut Org, name: String, parent: Option<usize>| {
            org.departments.push(Department { id: ids.at_millis(t.created as u64), name, parent });
            org.departments.len() - 1
        };
        let exec = add(self, "Executive".into(), None);
        let sales = add(self, "Sales".into(), Some(exec));
        let mut regional = [sales; 4];
        for (region, _) in self.regions.clone() {
            regional[region.index()] = add(self, format!("Sales — {}", region_name(region)), Some(sales));
        }
        Departments {
            regional_sales: regional,
            marketing: add(self, "Marketing".into(), Some(exec)),
            success: add(self, "Customer Success".into(), Some(exec)),
            support: add(self, "Support".into(), Some(exec)),
            finance: add(self, "Finance".into(), Some(exec)),
            engineering: add(self, "Engineering".into(), Some(exec)),
            revops: add(self, "Revenue Operations".into(), Some(exec)),
        }
    }

    fn build_territories(&mut self, t: &Tenant, ids: &mut crate::model::IdGen<SeedRng>) {
        for (region, _) in self.regions.clone() {
            let root = self.territories.len();
            self.territories.push(Territory {
                id: ids.at_millis(t.created as u64),
                name: region_name(region).to_owned(),
                region,
                parent: None,
                place: None,
            });
            for (pi, place) in PLACES.iter().enumerate().filter(|(_, p)| p.region == region) {
                self.territories.push(Territory {
                    id: ids.at_millis(t.created as u64),
                    name: place.territory.to_owned(),
                    region,
                    parent: Some(root),
                    place: Some(pi),
                });
            }
        }
    }

    fn build_users(&mut self, t: &Tenant, rng: &mut SeedRng, d: &Departments) {
        let reps_total = (t.accounts / 90).clamp(4, 500);
        let mut hires: Vec<Hire> = Vec::new();
        let plain = |role, department, title, founding| Hire {
            role,
            department,
            title,
            manager: None,
            region: None,
            territory: None,
            founding,
        };
        hires.push(plain(RoleKey::Admin, d.revops, "Head of Revenue Operations", true));
        if reps_total > 40 {
            hires.push(plain(RoleKey::Admin, d.revops, "Sales Operations Manager", false));
        }
        hires.push(plain(RoleKey::Manager, d.marketing, "Marketing Manager", true));
        let support_manager = hires.len();
        hires.push(plain(RoleKey::Manager, d.support, "Support Manager", true));
        for i in 0..(2 + t.accounts / 500).min(60) {
            let mut h = plain(RoleKey::SupportAgent, d.support, "Support Engineer", i == 0);
            h.manager = Some(support_manager);
            hires.push(h);
        }
        for i in 0..1 + reps_total / 25 {
            let mut h = plain(RoleKey::Analyst, d.revops, "Revenue Analyst", i == 0);
            h.manager = Some(0);
            hires.push(h);
        }
        for _ in 0..1 + reps_total / 30 {
            let mut h = plain(RoleKey::ReadOnly, d.finance, "Finance Controller", false);
            h.manager = Some(0);
            hires.push(h);
        }
        self.plan_sales_team(reps_total, d, &mut hires);
        self.hire_all(t, rng, hires);
    }

    /// Regional managers (one per seven reps) and reps spread over the region's sub-territories.
    fn plan_sales_team(&self, reps_total: usize, d: &Departments, hires: &mut Vec<Hire>) {
        let per_region = split_by_weight(reps_total, &self.regions);
        for ((region, _), reps) in self.regions.iter().zip(per_region) {
            let root = self.territories.iter().position(|t| t.region == *region && t.parent.is_none());
            let subs: Vec<usize> = (0..self.territories.len())
                .filter(|&i| self.territories[i].region == *region && self.territories[i].parent.is_some())
                .take(reps)
                .collect();
            let first_manager = hires.len();
            let managers = reps.div_ceil(7);
            for m in 0..managers {
                hires.push(Hire {
                    role: RoleKey::Manager,
                    department: d.regional_sales[region.index()],
                    title: "Regional Sales Director",
                    manager: Some(0),
                    region: Some(*region),
                    territory: root,
                    founding: m == 0,
                });
            }
            for r in 0..reps {
                hires.push(Hire {
                    role: RoleKey::SalesRep,
                    department: d.regional_sales[region.index()],
                    title: if r % 4 == 0 { "Senior Account Executive" } else { "Account Executive" },
                    manager: Some(first_manager + r % managers.max(1)),
                    region: Some(*region),
                    territory: subs.get(r % subs.len().max(1)).copied(),
                    founding: r == 0,
                });
            }
        }
    }

    fn hire_all(&mut self, t: &Tenant, rng: &mut SeedRng, hires: Vec<Hire>) {
        let mut ids = t.ids("users");
        let mut emails = std::collections::HashSet::new();
        let span = (t.now - 30 * DAY - t.created) as f64;
        for (i, h) in hires.into_iter().enumerate() {
            let created = if h.founding {
                t.created + i as i64 * 3_600_000
            } else {
                t.created + (growth_fraction(rng, 1.5) * span) as Ms
            };
            let (first, last) = (pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES));
            let mut email = format!("{}@{}", words::email_local(first, last), t.domain);
            let mut n = 2;
            while !emails.insert(email.clone()) {
                email = format!("{}{n}@{}", words::email_local(first, last), t.domain);
                n += 1;
            }
            let disabled = !h.founding && h.role != RoleKey::Manager && h.role != RoleKey::Admin && chance(rng, 0.03);
            let invited = !h.founding && !disabled && created > t.now - 45 * DAY && chance(rng, 0.5);
            let left = disabled.then(|| created + ((t.now - created) as f64 * uniform(rng, 0.3, 0.9)) as Ms);
            self.users.push(User {
                id: ids.at_millis(created as u64),
                role: h.role,
                first,
                last,
                email,
                title: h.title,
                manager: h.manager,
                region: h.region,
                territory: h.territory,
                department: h.department,
                status: match (disabled, invited) {
                    (true, _) => UserStatus::Disabled,
                    (_, true) => UserStatus::Invited,
                    _ => UserStatus::Active,
                },
                created,
                left,
            });
            self.index_user(i);
        }
    }

    fn index_user(&mut self, i: usize) {
        let u = &self.users[i];
        match u.role {
            RoleKey::SalesRep => self.reps_by_region[u.region.map_or(0, Region::index)].push(i),
            RoleKey::Manager if u.title == "Marketing Manager" => self.marketing = i,
            RoleKey::Manager => self.managers.push(i),
            RoleKey::SupportAgent => self.support_agents.push(i),
            RoleKey::Analyst => self.analysts.push(i),
            RoleKey::Admin if i == 0 => self.admin = 0,
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Departments {
    pub regional_sales: [usize; 4],
    pub marketing: usize,
    pub success: usize,
    pub support: usize,
    pub finance: usize,
    pub engineering: usize,
    pub revops: usize,
}

pub(crate) fn region_name(r: Region) -> &'static str {
    match r {
        Region::Na => "North America",
        Region::Emea => "EMEA",
        Region::Apac => "APAC",
        Region::Latam => "Latin America",
    }
}

/// Regions a tenant sells in: home region first; bigger tenants cover more of the world.
fn covered_regions(t: &Tenant) -> Vec<(Region, f64)> {
    let home = if t.currency == Cur::Usd { Region::Na } else { Region::Emea };
    let other = if home == Region::Na { Region::Emea } else { Region::Na };
    let reps = t.accounts / 90;
    let mut regions = vec![home, other];
    if reps >= 8 {
        regions.push(Region::Apac);
    }
    if reps >= 16 {
        regions.push(Region::Latam);
    }
    regions
        .into_iter()
        .map(|r| {
            let base = match r {
                Region::Na => 0.50,
                Region::Emea => 0.32,
                Region::Apac => 0.12,
                Region::Latam => 0.06,
            };
            (r, if r == home { base * 1.5 } else { base })
        })
        .collect()
}

/// Splits `n` by the weights (largest remainder), at least one each.
fn split_by_weight(n: usize, weights: &[(Region, f64)]) -> Vec<usize> {
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut parts: Vec<usize> = weights.iter().map(|(_, w)| ((n as f64 * w / total).floor() as usize).max(1)).collect();
    let mut i = 0;
    while parts.iter().sum::<usize>() < n {
        let len = parts.len();
        parts[i % len] += 1;
        i += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_total_and_minimum() {
        let w = [(Region::Na, 0.75), (Region::Emea, 0.32), (Region::Apac, 0.01)];
        let parts = split_by_weight(10, &w);
        assert_eq!(parts.iter().sum::<usize>(), 10);
        assert!(parts.iter().all(|p| *p >= 1));
    }
}
