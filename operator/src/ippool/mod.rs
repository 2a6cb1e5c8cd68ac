//! Allocation of a SendingIPPool's addresses to tenants, as pure functions.
//!
//! A sending address carries its tenant's reputation, so allocation is exclusive and sticky: an
//! address stays with its tenant as long as the tenant asks for it, even when a second pool
//! starts to list it too, unless that other pool had already given it to someone. An address
//! two pools list is never handed out anew (it is held back and reported) until only one lists
//! it. New demands are served oldest tenant first, lowest address first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::crd::sending_ip_pool::Allocation;

/// Most addresses one pool may expand to; larger ranges are refused rather than enumerated.
pub const MAX_POOL_ADDRESSES: usize = 4096;

/// A tenant's request: `namespace/name` and how many addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub tenant: String,
    pub count: u32,
}

/// The outcome of one allocation pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every allocated address and its tenant, by address.
    pub allocations: Vec<Allocation>,
    /// Tenants that got fewer addresses than they asked for, with how many are missing.
    pub short: Vec<(String, u32)>,
    /// Addresses of the pool nobody holds.
    pub free: usize,
}

/// Expands the pool's entries (addresses and CIDR ranges) into addresses, in order.
pub fn expand(entries: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut addresses = BTreeSet::new();
    for entry in entries {
        let (base, prefix) = match entry.split_once('/') {
            Some((base, prefix)) => (base, Some(prefix)),
            None => (entry.as_str(), None),
        };
        let base: IpAddr = base
            .parse()
            .map_err(|_| format!("{entry:?} is not an IP address"))?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = match prefix {
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{entry:?} has an invalid prefix length"))?,
            None => bits,
        };
        let host_bits = bits - prefix;
        if host_bits > MAX_POOL_ADDRESSES.ilog2() {
            return Err(format!(
                "{entry:?} holds 2^{host_bits} addresses; a pool may hold at most \
                 {MAX_POOL_ADDRESSES}"
            ));
        }
        let size = 1u128 << host_bits;
        let start = to_u128(base) & !(size - 1);
        for offset in 0..size {
            addresses.insert(from_u128(start + offset, base.is_ipv4()));
        }
        if addresses.len() > MAX_POOL_ADDRESSES {
            return Err(format!(
                "the pool holds more than {MAX_POOL_ADDRESSES} addresses"
            ));
        }
    }
    Ok(addresses.into_iter().collect())
}

fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((value as u32).into())
    } else {
        IpAddr::V6(value.into())
    }
}

/// Allocates `pool` to `demands`, keeping what each tenant already holds unless another pool
/// allocated it (`taken_elsewhere`), and handing out nothing in `held_back` (addresses another
/// pool lists too). `demands` come oldest tenant first.
pub fn allocate(
    pool: &[IpAddr],
    held_back: &BTreeSet<IpAddr>,
    taken_elsewhere: &BTreeSet<IpAddr>,
    previous: &[Allocation],
    demands: &[Demand],
) -> Plan {
    let listed: BTreeSet<IpAddr> = pool.iter().copied().collect();
    let usable: BTreeSet<IpAddr> = pool
        .iter()
        .filter(|address| !held_back.contains(address))
        .copied()
        .collect();
    let mut held: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    let mut taken = BTreeSet::new();

    // Keep what each tenant still asks for, lowest addresses first.
    for demand in demands {
        let mut kept: Vec<IpAddr> = previous
            .iter()
            .filter(|a| a.tenant == demand.tenant)
            .filter_map(|a| a.address.parse().ok())
            .filter(|address| listed.contains(address) && !taken_elsewhere.contains(address))
            .collect();
        kept.sort();
        kept.truncate(demand.count as usize);
        taken.extend(kept.iter().copied());
        held.insert(&demand.tenant, kept);
    }

    // Serve the rest, oldest tenant first, from the lowest free address.
    let mut free = usable
        .iter()
        .filter(|address| !taken.contains(address))
        .copied();
    let mut short = Vec::new();
    for demand in demands {
        let addresses = held
            .get_mut(demand.tenant.as_str())
            .expect("every demand is held");
        while addresses.len() < demand.count as usize {
            match free.next() {
                Some(address) => addresses.push(address),
                None => break,
            }
        }
        let missing = demand.count as usize - addresses.len();
        if missing > 0 {
            short.push((demand.tenant.clone(), missing as u32));
        }
    }

    let mut allocations: Vec<(IpAddr, Allocation)> = held
        .into_iter()
        .flat_map(|(tenant, addresses)| {
            addresses.into_iter().map(move |address| {
                (
                    address,
                    Allocation {
                        address: address.to_string(),
                        tenant: tenant.to_string(),
                    },
                )
            })
        })
        .collect();
    allocations.sort_by_key(|(address, _)| *address);
    // Kept addresses may be held back, so they are not necessarily part of `usable`.
    let free = usable
        .iter()
        .filter(|address| {
            allocations
                .binary_search_by_key(*address, |(a, _)| *a)
                .is_err()
        })
        .count();
    Plan {
        allocations: allocations.into_iter().map(|(_, a)| a).collect(),
        short,
        free,
    }
}

#[cfg(test)]
mod tests;
