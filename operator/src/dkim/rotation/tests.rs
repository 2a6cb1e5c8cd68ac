use chrono::TimeZone;

use super::*;

const BOTH: [DkimAlgorithm; 2] = [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256];

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap()
}

fn schedule() -> Schedule {
    Schedule {
        period: Duration::days(10),
        grace: Duration::days(2),
    }
}

#[test]
fn selector_names_are_stable_and_unique_per_generation() {
    let first = new_generation(1, &BOTH, day(1));
    let names: Vec<&str> = first.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["mw1-20260301-rsa", "mw1-20260301-ed"]);
    assert_eq!(first.selectors[0].key, "mw1-20260301-rsa.pem");
    let second = new_generation(2, &BOTH, day(1));
    assert_eq!(second.selectors[1].name, "mw2-20260301-ed");
}

#[test]
fn full_rotation_never_signs_with_an_unverified_key() {
    let none = |_: &Selector| false;
    let all = |_: &Selector| true;
    assert_eq!(
        next_step(&[], all, schedule(), false, day(1)),
        Step::Create { generation: 1 }
    );

    let gens = vec![new_generation(1, &BOTH, day(1))];
    assert_eq!(
        next_step(&gens, none, schedule(), false, day(1)),
        Step::Wait { recheck: None }
    );
    assert!(signing_selectors(&gens).is_empty());
    let step = next_step(&gens, all, schedule(), false, day(1));
    assert_eq!(step, Step::Activate { generation: 1 });
    let gens = apply(gens, &step, schedule(), day(1));
    assert_eq!(signing_selectors(&gens)[0].name, "mw1-20260301-rsa");
    assert_eq!(
        next_step(&gens, all, schedule(), false, day(5)),
        Step::Wait {
            recheck: Some(day(11))
        }
    );

    // Period over: a second generation is published while the first keeps signing.
    assert_eq!(
        next_step(&gens, all, schedule(), false, day(11)),
        Step::Create { generation: 2 }
    );
    let mut gens = gens;
    gens.push(new_generation(2, &BOTH, day(11)));
    let only_old = |s: &Selector| s.name.starts_with("mw1-");
    assert_eq!(
        next_step(&gens, only_old, schedule(), false, day(11)),
        Step::Wait { recheck: None }
    );
    assert_eq!(signing_selectors(&gens)[1].name, "mw1-20260301-ed");

    let step = next_step(&gens, all, schedule(), false, day(12));
    assert_eq!(step, Step::Activate { generation: 2 });
    let gens = apply(gens, &step, schedule(), day(12));
    assert_eq!(gens[0].phase, Phase::Retiring);
    assert_eq!(gens[0].retire_at.as_deref(), Some("2026-03-14T12:00:00Z"));
    assert_eq!(
        gens[1].activated_at.as_deref(),
        Some("2026-03-12T12:00:00Z")
    );
    assert_eq!(published_selectors(&gens).len(), 4);
    assert_eq!(signing_selectors(&gens)[0].name, "mw2-20260311-rsa");
    assert_eq!(
        next_step(&gens, all, schedule(), false, day(13)),
        Step::Wait {
            recheck: Some(day(14))
        }
    );

    let step = next_step(&gens, all, schedule(), false, day(14));
    assert_eq!(step, Step::Retire { generation: 1 });
    let gens = apply(gens, &step, schedule(), day(14));
    assert_eq!(gens.len(), 1);
    assert_eq!(gens[0].generation, 2);
}

#[test]
fn on_demand_rotation_starts_a_generation_early() {
    let gens = apply(
        vec![new_generation(4, &BOTH, day(1))],
        &Step::Activate { generation: 4 },
        schedule(),
        day(1),
    );
    assert_eq!(
        next_step(&gens, |_| true, schedule(), true, day(2)),
        Step::Create { generation: 5 }
    );
}
