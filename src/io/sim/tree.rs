//! The simulated file system's directory entries: a map from path to
//! entry whose keys compare as cheaply as bytes do, in the order `Path`
//! gives (component by component), so that everything below a directory
//! is one range of the map.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::ops::Bound;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// A directory entry: a directory, or a file (its inode's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    Dir,
    File(usize),
}

/// A path's bytes with each separator replaced by a zero byte (which a
/// path never holds), so that plain byte order is `Path`'s order for the
/// simulated file system's paths (joined from names, never `.`, `..`, a
/// doubled or trailing separator): a directory's descendants sort right
/// after it, together.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key(Box<[u8]>);

impl Key {
    fn of(p: &Path) -> Key {
        let b = p.as_os_str().as_bytes();
        Key(b.iter().map(|&c| if c == b'/' { 0 } else { c }).collect())
    }

    fn path(&self) -> PathBuf {
        let b: Vec<u8> = self
            .0
            .iter()
            .map(|&c| if c == 0 { b'/' } else { c })
            .collect();
        PathBuf::from(OsString::from_vec(b))
    }
}

/// Path → entry.
#[derive(Debug, Clone, Default)]
pub(super) struct Tree(BTreeMap<Key, Entry>);

impl Tree {
    pub fn get(&self, p: &Path) -> Option<Entry> {
        self.0.get(&Key::of(p)).copied()
    }

    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains_key(&Key::of(p))
    }

    pub fn insert(&mut self, p: &Path, e: Entry) {
        self.0.insert(Key::of(p), e);
    }

    pub fn remove(&mut self, p: &Path) -> Option<Entry> {
        self.0.remove(&Key::of(p))
    }

    /// The entries below `dir`, at any depth, in order.
    pub fn below<'a>(&'a self, dir: &Path) -> impl Iterator<Item = (PathBuf, Entry)> + 'a {
        let d = Key::of(dir).0;
        let sep = usize::from(!d.ends_with(&[0]));
        self.0
            .range((Bound::Excluded(Key(d.clone())), Bound::Unbounded))
            .take_while(move |(k, _)| {
                k.0.len() > d.len() + sep && k.0.starts_with(&d) && (sep == 0 || k.0[d.len()] == 0)
            })
            .map(|(k, e)| (k.path(), *e))
    }

    /// The entries directly inside `dir`, in order: those below it whose
    /// rest holds no separator, told apart on the keys' bytes so that only
    /// the children are turned back into paths.
    pub fn children<'a>(&'a self, dir: &Path) -> impl Iterator<Item = (PathBuf, Entry)> + 'a {
        let mut prefix = Key::of(dir).0.into_vec();
        if !prefix.ends_with(&[0]) {
            prefix.push(0);
        }
        let from = Bound::Excluded(Key(prefix.clone().into_boxed_slice()));
        self.0
            .range((from, Bound::Unbounded))
            .map_while(move |(k, e)| Some((k.0.strip_prefix(&prefix[..])?, k, e)))
            .filter(|(rest, _, _)| !rest.is_empty() && !rest.contains(&0))
            .map(|(_, k, e)| (k.path(), *e))
    }

    /// Removes `p` and everything below it.
    pub fn remove_all(&mut self, p: &Path) {
        let doomed: Vec<Key> = self.below(p).map(|(k, _)| Key::of(&k)).collect();
        self.remove(p);
        for k in doomed {
            self.0.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map's order, ranges and children are `Path`'s.
    #[test]
    fn tree_agrees_with_path() {
        let paths = [
            "/",
            "/l",
            "/l/a-0",
            "/l/a-0/x.log",
            "/l/a-0.log",
            "/l/a-00",
            "/l/a-0/y",
            "/l/b",
            "/m",
            "/l/a",
            "/l/a-0/x",
        ];
        let mut tree = Tree::default();
        for p in paths {
            tree.insert(Path::new(p), Entry::Dir);
        }
        let mut sorted: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        sorted.sort();
        let order: Vec<PathBuf> = tree.below(Path::new("/")).map(|(k, _)| k).collect();
        assert_eq!(order, sorted[1..]);
        for d in paths {
            let d = Path::new(d);
            let got: Vec<PathBuf> = tree.children(d).map(|(k, _)| k).collect();
            let want: Vec<PathBuf> = sorted
                .iter()
                .filter(|k| k.parent() == Some(d))
                .cloned()
                .collect();
            assert_eq!(got, want, "children of {}", d.display());
            let all: Vec<PathBuf> = tree.below(d).map(|(k, _)| k).collect();
            let want: Vec<PathBuf> = sorted
                .iter()
                .filter(|k| k.starts_with(d) && k.as_path() != d)
                .cloned()
                .collect();
            assert_eq!(all, want, "below {}", d.display());
        }
        tree.remove_all(Path::new("/l/a-0"));
        assert!(!tree.contains(Path::new("/l/a-0/x.log")));
        assert!(tree.contains(Path::new("/l/a-0.log")));
        assert!(tree.contains(Path::new("/l/a-00")));
    }
}
