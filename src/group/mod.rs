//! Consumer groups: assignors, the in-process coordinator, and the offsets
//! store on `__consumer_offsets`.

pub(crate) mod assignor;
pub(crate) mod coordinator;
pub(crate) mod offsets;
pub(crate) mod store;
