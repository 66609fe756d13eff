//! Interned text: the partner ids, MPN ids, products and reason codes that
//! many records of the state repeat, each held once.
//!
//! A million claims name a few hundred partners and a handful of products;
//! a `String` per claim and field kept a copy (24 bytes, plus a heap chunk
//! of 32 or more) of each. A [`Name`] is one pointer (8 bytes) to text the
//! state's [`Names`] table shares, so a repeated value costs 8 bytes.
//! Equal names compare by their text, never by address, so a [`Name`]
//! behaves like the `&str` it dereferences to.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Shared, immutable text: `Deref<Target = str>`, ordered, compared and
/// serialized as its text. One pointer wide (the text sits behind an
/// `Arc<String>`, so the pointer is thin).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<String>);

impl Name {
    /// A name not shared with any table: for a value built outside the
    /// state (a claim as it would be submitted).
    pub fn new(text: &str) -> Name {
        Name(Arc::new(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<&Name> for String {
    fn from(name: &Name) -> String {
        name.as_str().to_string()
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The intern table: every distinct text the state names, once. It only
/// grows (a text stays while the state lives), which bounds it by the
/// distinct values folded: partner and MPN ids of the reference data,
/// products, reason codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(BTreeSet<Name>);

impl Names {
    /// The shared name for `text`, adding it on first sight.
    pub fn intern(&mut self, text: &str) -> Name {
        if let Some(name) = self.0.get(text) {
            return name.clone();
        }
        let name = Name::new(text);
        self.0.insert(name.clone());
        name
    }

    /// The shared name for `text`, if the table has it: a lookup that adds
    /// nothing (a text the state never saw names nothing in it).
    pub fn get(&self, text: &str) -> Option<&Name> {
        self.0.get(text)
    }

    /// Every text of the table, in text order.
    pub fn iter(&self) -> impl Iterator<Item = &Name> + '_ {
        self.0.iter()
    }

    /// How many distinct texts the table holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_one_text_and_names_compare_by_text() {
        let mut names = Names::default();
        let a = names.intern("P-100");
        let b = names.intern("P-100");
        assert!(
            Arc::ptr_eq(&a.0, &b.0),
            "the second intern shares the first"
        );
        assert_eq!(names.len(), 1);
        // A name made outside the table is equal by its text.
        assert_eq!(a, Name::new("P-100"));
        assert_eq!(a, "P-100");
        assert!(a < names.intern("P-200"));
        assert_eq!(names.get("P-300"), None);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"P-100\"");
        assert_eq!(std::mem::size_of::<Name>(), 8);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 8);
    }
}
