//! Classification on the seed's three dimensions and the open category derived from them.
//!
//! Every dataset and field carries a [`Grades`] triple. A [`RuleTable`] maps each grade to an
//! [`OpenCategory`]; the category of a triple is the most restrictive of its three. The default
//! table follows the seed: trade secrets, non-anonymous sensitive personal data and high-risk
//! objects are non-open; data that is public by law or carries no risk is unconditional.

use serde::{Deserialize, Serialize};

/// The personal dimension, lowest risk first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PersonalGrade {
    /// No personal data at all.
    #[default]
    None,
    /// Anonymous, not sensitive (e.g. visitor counts on the Bund).
    AnonymousNonSensitive,
    /// Identifies a person, not sensitive (e.g. a named volunteer).
    NonAnonymousNonSensitive,
    /// Anonymous but sensitive (e.g. de-identified traffic violations).
    AnonymousSensitive,
    /// Identifies a person and sensitive (e.g. medical records).
    NonAnonymousSensitive,
}

/// The organisation dimension, lowest risk first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationGrade {
    /// No organisation data.
    #[default]
    None,
    /// Public by law (e.g. company disclosures).
    PublicByLaw,
    /// Internal operations (e.g. water and electricity use).
    InternalOperations,
    /// Trade secret (e.g. core technology, patents in preparation).
    TradeSecret,
}

/// The object dimension, lowest risk first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ObjectGrade {
    /// Public by law (e.g. park addresses).
    #[default]
    PublicByLaw,
    /// Low risk when opened (e.g. parking spaces).
    LowRisk,
    /// Affects public or national security (e.g. drug-use records).
    PublicSecurity,
    /// High risk (e.g. exact locations of reservoirs, bridges, tunnels).
    HighRisk,
}

/// The open category of a dataset or field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenCategory {
    /// Anyone may read it, also without a licence.
    Unconditional,
    /// Needs a licence, a declared scenario and a masking rule.
    Conditional,
    /// Never leaves the gateway, whatever a licence says.
    NonOpen,
}

impl OpenCategory {
    /// Stable lower-case name, as used in config and the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unconditional => "unconditional",
            Self::Conditional => "conditional",
            Self::NonOpen => "non_open",
        }
    }
}

/// A grade on each of the three dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Grades {
    /// Personal dimension.
    #[serde(default)]
    pub personal: PersonalGrade,
    /// Organisation dimension.
    #[serde(default)]
    pub organisation: OrganisationGrade,
    /// Object dimension.
    #[serde(default)]
    pub object: ObjectGrade,
}

/// Maps grades to open categories. Config may override any entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleTable {
    /// Category per personal grade, in [`PersonalGrade`] order.
    pub personal: [OpenCategory; 5],
    /// Category per organisation grade, in [`OrganisationGrade`] order.
    pub organisation: [OpenCategory; 4],
    /// Category per object grade, in [`ObjectGrade`] order.
    pub object: [OpenCategory; 4],
    /// From this personal grade up, a conditional field may only leave masked
    /// (the seed's floor: no address, age or other personal identifier in the clear).
    pub masking_required_from: PersonalGrade,
}

impl Default for RuleTable {
    fn default() -> Self {
        use OpenCategory::{Conditional as C, NonOpen as N, Unconditional as U};
        Self {
            personal: [U, U, C, C, N],
            organisation: [U, U, C, N],
            object: [U, U, C, N],
            masking_required_from: PersonalGrade::NonAnonymousNonSensitive,
        }
    }
}

impl RuleTable {
    /// The open category of a grade triple: the most restrictive of its three dimensions.
    ///
    /// ```
    /// use sluice_policy::classify::*;
    /// let t = RuleTable::default();
    /// let mobile = Grades { personal: PersonalGrade::NonAnonymousNonSensitive, ..Grades::default() };
    /// assert_eq!(t.category(&mobile), OpenCategory::Conditional);
    /// let medical = Grades { personal: PersonalGrade::NonAnonymousSensitive, ..Grades::default() };
    /// assert_eq!(t.category(&medical), OpenCategory::NonOpen);
    /// ```
    pub fn category(&self, g: &Grades) -> OpenCategory {
        let p = self.personal[g.personal as usize];
        let o = self.organisation[g.organisation as usize];
        let b = self.object[g.object as usize];
        p.max(o).max(b)
    }

    /// Whether a field with these grades may only leave masked.
    pub fn requires_masking(&self, g: &Grades) -> bool {
        g.personal >= self.masking_required_from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let t = RuleTable::default();
        let g = |personal, organisation, object| Grades {
            personal,
            organisation,
            object,
        };
        use ObjectGrade as B;
        use OrganisationGrade as O;
        use PersonalGrade as P;
        assert_eq!(
            t.category(&g(P::None, O::None, B::PublicByLaw)),
            OpenCategory::Unconditional
        );
        assert_eq!(
            t.category(&g(P::AnonymousNonSensitive, O::None, B::LowRisk)),
            OpenCategory::Unconditional
        );
        assert_eq!(
            t.category(&g(P::None, O::InternalOperations, B::PublicByLaw)),
            OpenCategory::Conditional
        );
        assert_eq!(
            t.category(&g(P::None, O::TradeSecret, B::PublicByLaw)),
            OpenCategory::NonOpen
        );
        assert_eq!(
            t.category(&g(P::None, O::None, B::HighRisk)),
            OpenCategory::NonOpen
        );
        assert_eq!(
            t.category(&g(P::AnonymousSensitive, O::None, B::PublicSecurity)),
            OpenCategory::Conditional
        );
    }

    #[test]
    fn masking_floor() {
        let t = RuleTable::default();
        let named = Grades {
            personal: PersonalGrade::NonAnonymousNonSensitive,
            ..Grades::default()
        };
        let anon = Grades {
            personal: PersonalGrade::AnonymousNonSensitive,
            ..Grades::default()
        };
        assert!(t.requires_masking(&named));
        assert!(!t.requires_masking(&anon));
    }

    #[test]
    fn overrides_apply() {
        let t: RuleTable =
            serde_json::from_str(r#"{"object":["unconditional","conditional","non_open","non_open"]}"#)
                .unwrap();
        let parking = Grades {
            object: ObjectGrade::LowRisk,
            ..Grades::default()
        };
        assert_eq!(t.category(&parking), OpenCategory::Conditional);
        assert_eq!(t.personal, RuleTable::default().personal);
    }
}
