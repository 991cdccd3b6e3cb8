//! Administrative requests: ApiVersions, CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, DescribeCluster.

use super::reader::{Reader, Result};

/// ApiVersions (key 18), v0–4.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiVersions<'a> {
    /// v3+: the client library's name.
    pub client_software_name: &'a str,
    /// v3+: its version.
    pub client_software_version: &'a str,
}

impl<'a> ApiVersions<'a> {
    /// Decodes the body of a v0–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let (client_software_name, client_software_version) = if version >= 3 {
            (
                r.str("client_software_name")?,
                r.str("client_software_version")?,
            )
        } else {
            ("", "")
        };
        r.skip_tags()?;
        Ok(ApiVersions {
            client_software_name,
            client_software_version,
        })
    }
}

/// CreateTopics (key 19), v2–7.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTopics<'a> {
    /// The topics.
    pub topics: Vec<NewTopic<'a>>,
    /// Check only; create nothing.
    pub validate_only: bool,
}

/// One topic of [`CreateTopics`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewTopic<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its partition count; −1 for the server's default.
    pub num_partitions: i32,
    /// Its replication factor; −1 for the default. Only 1 can be met.
    pub replication_factor: i16,
    /// Whether explicit replica assignments were given.
    pub has_assignments: bool,
    /// `(key, value)` configs.
    pub configs: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> CreateTopics<'a> {
    /// Decodes the body of a v2–7 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let topics = r.array("topics", |r| {
            let name = r.str("name")?;
            let num_partitions = r.i32("num_partitions")?;
            let replication_factor = r.i16("replication_factor")?;
            let assignments = r.array("assignments", |r| {
                r.i32("partition_index")?;
                r.array("broker_ids", |r| r.i32("broker id"))?;
                r.skip_tags()
            })?;
            let configs = r.array("configs", |r| {
                let k = r.str("config name")?;
                let v = r.nullable_str("config value")?;
                r.skip_tags()?;
                Ok((k, v))
            })?;
            r.skip_tags()?;
            Ok(NewTopic {
                name,
                num_partitions,
                replication_factor,
                has_assignments: !assignments.is_empty(),
                configs,
            })
        })?;
        r.i32("timeout_ms")?;
        let validate_only = r.bool("validate_only")?;
        r.skip_tags()?;
        Ok(CreateTopics {
            topics,
            validate_only,
        })
    }
}

/// DeleteTopics (key 20), v1–5: the names.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteTopics<'a> {
    /// The topics.
    pub names: Vec<&'a str>,
}

impl<'a> DeleteTopics<'a> {
    /// Decodes the body of a v1–5 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let names = r.array("topic_names", |r| r.str("topic"))?;
        r.i32("timeout_ms")?;
        r.skip_tags()?;
        Ok(DeleteTopics { names })
    }
}

/// CreatePartitions (key 37), v0–3: `(topic, new total count)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePartitions<'a> {
    /// The topics and their new partition counts.
    pub topics: Vec<(&'a str, i32)>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

impl<'a> CreatePartitions<'a> {
    /// Decodes the body of a v0–3 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let topics = r.array("topics", |r| {
            let name = r.str("name")?;
            let count = r.i32("count")?;
            r.nullable_array("assignments", |r| {
                r.array("broker_ids", |r| r.i32("broker id"))?;
                r.skip_tags()
            })?;
            r.skip_tags()?;
            Ok((name, count))
        })?;
        r.i32("timeout_ms")?;
        let validate_only = r.bool("validate_only")?;
        r.skip_tags()?;
        Ok(CreatePartitions {
            topics,
            validate_only,
        })
    }
}

/// DescribeConfigs (key 32), v1–4.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeConfigs<'a> {
    /// `(resource type, name, keys or None for all)`: type 2 is a topic,
    /// 4 a broker.
    pub resources: Vec<(i8, &'a str, Option<Vec<&'a str>>)>,
    /// Whether to list each config's synonyms.
    pub include_synonyms: bool,
    /// v3+: whether to include documentation.
    pub include_documentation: bool,
}

impl<'a> DescribeConfigs<'a> {
    /// Decodes the body of a v1–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let resources = r.array("resources", |r| {
            let ty = r.i8("resource_type")?;
            let name = r.str("resource_name")?;
            let keys = r.nullable_array("configuration_keys", |r| r.str("key"))?;
            r.skip_tags()?;
            Ok((ty, name, keys))
        })?;
        let include_synonyms = r.bool("include_synonyms")?;
        let include_documentation = if version >= 3 {
            r.bool("include_documentation")?
        } else {
            false
        };
        r.skip_tags()?;
        Ok(DescribeConfigs {
            resources,
            include_synonyms,
            include_documentation,
        })
    }
}

/// DescribeCluster (key 60), v0–1.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeCluster {
    /// v1+: 1 for brokers, 2 for controllers.
    pub endpoint_type: i8,
}

impl DescribeCluster {
    /// Decodes the body of a v0–1 request.
    pub fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self> {
        r.bool("include_cluster_authorized_operations")?;
        let endpoint_type = if version >= 1 {
            r.i8("endpoint_type")?
        } else {
            1
        };
        r.skip_tags()?;
        Ok(DescribeCluster { endpoint_type })
    }
}
