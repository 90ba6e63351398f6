//! The fair share: with `P` partitions and `N` live instances, each owns `P / N`, and the
//! first `P % N` instances in the sorted list of live ids own one more (8 over 3: 3, 3, 2).
//! An instance above its share gives up its highest partitions; one below takes free ones.
//! Nothing moves while the set of live instances stays the same, so an instance slower than
//! usual, but within its lease, changes nothing.

/// How many of `n_partitions` the instance at `rank` (its place among the `n_live` sorted
/// live ids) should own.
pub fn fair_share(n_partitions: usize, n_live: usize, rank: usize) -> usize {
    let n_live = n_live.max(1);
    n_partitions / n_live + usize::from(rank < n_partitions % n_live)
}

/// One round of the lease loop for an instance that owns `owned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// How many free or expired leases to try to take.
    pub acquire: usize,
    /// Partitions to give up (after their in-flight batches are written).
    pub release: Vec<i32>,
}

/// What an instance owning `owned` does to reach `share`: give up its highest partitions
/// beyond it, or take what it lacks.
pub fn round(owned: &[i32], share: usize) -> Round {
    let mut sorted = owned.to_vec();
    sorted.sort_unstable();
    let release = sorted.split_off(share.min(sorted.len()));
    Round {
        acquire: share.saturating_sub(owned.len()),
        release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_split_evenly_over_live_instances() {
        let shares = |partitions, live| -> Vec<usize> {
            (0..live)
                .map(|rank| fair_share(partitions, live, rank))
                .collect()
        };
        assert_eq!(shares(8, 3), vec![3, 3, 2]);
        assert_eq!(shares(8, 1), vec![8]);
        assert_eq!(shares(8, 2), vec![4, 4]);
        assert_eq!(shares(2, 3), vec![1, 1, 0]);
        for (partitions, live) in [(8, 3), (100, 7), (1, 4), (12, 5)] {
            assert_eq!(shares(partitions, live).iter().sum::<usize>(), partitions);
        }
        assert_eq!(fair_share(8, 0, 0), 8, "no live list yet counts as alone");
    }

    #[test]
    fn a_round_releases_the_highest_surplus_or_takes_what_is_missing() {
        assert_eq!(
            round(&[7, 0, 5, 2], 2),
            Round {
                acquire: 0,
                release: vec![5, 7]
            }
        );
        assert_eq!(
            round(&[1], 3),
            Round {
                acquire: 2,
                release: vec![]
            }
        );
        assert_eq!(
            round(&[1, 2, 3], 3),
            Round {
                acquire: 0,
                release: vec![]
            }
        );
    }
}
