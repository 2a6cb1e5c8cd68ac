use super::*;

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn demand(tenant: &str, count: u32) -> Demand {
    Demand {
        tenant: tenant.into(),
        count,
    }
}

fn allocation(address: &str, tenant: &str) -> Allocation {
    Allocation {
        address: address.into(),
        tenant: tenant.into(),
    }
}

#[test]
fn ranges_expand_to_every_address() {
    let pool = expand(&[
        "192.0.2.16/30".into(),
        "2001:db8::10".into(),
        "192.0.2.17".into(),
    ]);
    assert_eq!(
        pool.unwrap(),
        ips(&[
            "192.0.2.16",
            "192.0.2.17",
            "192.0.2.18",
            "192.0.2.19",
            "2001:db8::10"
        ])
    );
    assert_eq!(
        expand(&["192.0.2.18/31".into()]).unwrap(),
        ips(&["192.0.2.18", "192.0.2.19"])
    );
}

#[test]
fn huge_or_bad_ranges_are_refused() {
    assert_eq!(
        expand(&["10.0.0.0/8".into()]).unwrap_err(),
        "\"10.0.0.0/8\" holds 2^24 addresses; a pool may hold at most 4096"
    );
    assert_eq!(
        expand(&["2001:db8::/0".into()]).unwrap_err(),
        "\"2001:db8::/0\" holds 2^128 addresses; a pool may hold at most 4096"
    );
    assert_eq!(
        expand(&["192.0.2.1/33".into()]).unwrap_err(),
        "\"192.0.2.1/33\" has an invalid prefix length"
    );
    assert_eq!(
        expand(&["mail.example".into()]).unwrap_err(),
        "\"mail.example\" is not an IP address"
    );
}

#[test]
fn oldest_tenant_is_served_first_from_the_lowest_address() {
    let pool = ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    let plan = allocate(
        &pool,
        &BTreeSet::new(),
        &BTreeSet::new(),
        &[],
        &[demand("a/old", 2), demand("b/new", 2)],
    );
    assert_eq!(
        plan.allocations,
        [
            allocation("192.0.2.1", "a/old"),
            allocation("192.0.2.2", "a/old"),
            allocation("192.0.2.3", "b/new")
        ]
    );
    assert_eq!(plan.short, [("b/new".to_string(), 1)]);
    assert_eq!(plan.free, 0);
}

#[test]
fn allocations_are_sticky_and_released_when_no_longer_asked_for() {
    let pool = ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    let previous = [
        allocation("192.0.2.3", "b/new"),
        allocation("192.0.2.1", "gone/tenant"),
    ];
    let plan = allocate(
        &pool,
        &BTreeSet::new(),
        &BTreeSet::new(),
        &previous,
        &[demand("a/old", 1), demand("b/new", 1)],
    );
    assert_eq!(
        plan.allocations,
        [
            allocation("192.0.2.1", "a/old"),
            allocation("192.0.2.3", "b/new")
        ]
    );
    assert!(plan.short.is_empty());
    assert_eq!(plan.free, 1);
}

#[test]
fn shrinking_a_demand_keeps_the_lowest_addresses() {
    let pool = ips(&["192.0.2.1", "192.0.2.2"]);
    let previous = [
        allocation("192.0.2.2", "a/t"),
        allocation("192.0.2.1", "a/t"),
    ];
    let plan = allocate(
        &pool,
        &BTreeSet::new(),
        &BTreeSet::new(),
        &previous,
        &[demand("a/t", 1)],
    );
    assert_eq!(plan.allocations, [allocation("192.0.2.1", "a/t")]);
}

#[test]
fn held_back_addresses_stay_with_their_tenant_but_are_never_handed_out() {
    let pool = ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    let held_back = BTreeSet::from([ips(&["192.0.2.1"])[0], ips(&["192.0.2.2"])[0]]);
    let previous = [allocation("192.0.2.1", "a/t")];
    let plan = allocate(
        &pool,
        &held_back,
        &BTreeSet::new(),
        &previous,
        &[demand("a/t", 2), demand("b/t", 1)],
    );
    // a keeps .1 (its reputation) and gets .3; .2 is listed elsewhere, so b waits.
    assert_eq!(
        plan.allocations,
        [
            allocation("192.0.2.1", "a/t"),
            allocation("192.0.2.3", "a/t")
        ]
    );
    assert_eq!(plan.short, [("b/t".to_string(), 1)]);
    assert_eq!(plan.free, 0);
}

#[test]
fn an_address_the_other_pool_gave_away_is_given_up() {
    let pool = ips(&["192.0.2.1", "192.0.2.2"]);
    let shared = BTreeSet::from([ips(&["192.0.2.1"])[0]]);
    let previous = [allocation("192.0.2.1", "a/t")];
    let plan = allocate(&pool, &shared, &shared, &previous, &[demand("a/t", 2)]);
    assert_eq!(plan.allocations, [allocation("192.0.2.2", "a/t")]);
    assert_eq!(plan.short, [("a/t".to_string(), 1)]);
}
