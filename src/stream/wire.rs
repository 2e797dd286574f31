//! Flight messages and v2 components: decoding one message at a time (a bad one is an error
//! for that message, the stream goes on), naming the component of each batch, and encoding a
//! sender's batches, several components on one stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::Buffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::MessageHeader;
use arrow_flight::{FlightData, FlightDescriptor, SchemaAsIpc};

use crate::error::{Location, guard_decoder};
use crate::io::v2::Component;
use crate::io::v2::schema::key;

use super::stats::RejectReason;

/// The schema metadata key naming a batch's component (`lidar`, `camera_image`, …).
pub const COMPONENT_KEY: &str = "scenetok.component";

/// What one message held.
#[derive(Debug)]
pub enum Decoded {
    /// A schema, a dictionary or an empty message: nothing to assemble yet.
    Nothing,
    Batch(Component, RecordBatch),
}

/// Decodes the messages of one `DoPut` stream in order.
#[derive(Default)]
pub struct MessageDecoder {
    schema: Option<SchemaRef>,
    component: Option<Component>,
    /// The component the stream's descriptor names (`["lidar"]`).
    descriptor: Option<Component>,
    dictionaries: HashMap<i64, ArrayRef>,
}

/// Why a message was rejected, and what to log.
pub type Rejection = (RejectReason, String);

impl MessageDecoder {
    /// Decodes one message; `at` names the stream and message for errors.
    pub fn decode(&mut self, data: &FlightData, at: &Location) -> Result<Decoded, Rejection> {
        if let Some(d) = &data.flight_descriptor
            && let Some(first) = d.path.first()
        {
            self.descriptor = Component::from_tag(first);
        }
        let undecodable = |e: String| (RejectReason::Undecodable, format!("{at}: not an Arrow IPC message: {e}"));
        let result = guard_decoder(at, "Arrow IPC message", || Ok(self.decode_inner(data, at)));
        match result {
            Ok(r) => r,
            Err(e) => Err(undecodable(e.to_string())),
        }
    }

    fn decode_inner(&mut self, data: &FlightData, at: &Location) -> Result<Decoded, Rejection> {
        let undecodable = |e: String| (RejectReason::Undecodable, format!("{at}: not an Arrow IPC message: {e}"));
        if data.data_header.is_empty() {
            return Ok(Decoded::Nothing);
        }
        let message = arrow::ipc::root_as_message(&data.data_header[..]).map_err(|e| undecodable(e.to_string()))?;
        match message.header_type() {
            MessageHeader::Schema => {
                let schema = Arc::new(Schema::try_from(data).map_err(|e| undecodable(e.to_string()))?);
                self.component = component_of(&schema, self.descriptor);
                self.schema = Some(schema);
                self.dictionaries.clear();
                Ok(Decoded::Nothing)
            }
            MessageHeader::DictionaryBatch => {
                let schema = self.schema.clone().ok_or_else(|| undecodable("a dictionary before any schema".into()))?;
                let dict = message
                    .header_as_dictionary_batch()
                    .ok_or_else(|| undecodable("a bad dictionary header".into()))?;
                arrow::ipc::reader::read_dictionary(
                    &Buffer::from(data.data_body.clone()),
                    dict,
                    &schema,
                    &mut self.dictionaries,
                    &message.version(),
                )
                .map_err(|e| undecodable(e.to_string()))?;
                Ok(Decoded::Nothing)
            }
            MessageHeader::RecordBatch => {
                let schema =
                    self.schema.clone().ok_or_else(|| undecodable("a record batch before any schema".into()))?;
                let batch = arrow_flight::utils::flight_data_to_arrow_batch(data, schema, &self.dictionaries)
                    .map_err(|e| undecodable(e.to_string()))?;
                let component = self.component.ok_or_else(|| {
                    (
                        RejectReason::WrongSchema,
                        format!(
                            "{at}: expected the batch's component in the descriptor path, the schema metadata `{COMPONENT_KEY}` or its v2 column names, found none of them"
                        ),
                    )
                })?;
                Ok(Decoded::Batch(component, batch))
            }
            _ => Ok(Decoded::Nothing),
        }
    }
}

/// The component of batches with `schema`: its metadata, else the stream's descriptor, else
/// the component whose own (non-key) columns it holds most of.
pub fn component_of(schema: &Schema, descriptor: Option<Component>) -> Option<Component> {
    if let Some(tag) = schema.metadata().get(COMPONENT_KEY) {
        return Component::from_tag(tag);
    }
    descriptor.or_else(|| {
        let keys = [
            key::SEGMENT,
            key::TIMESTAMP,
            key::LASER,
            key::CAMERA,
            key::LASER_OBJECT,
            key::CAMERA_OBJECT,
            key::MAP_FEATURE,
        ];
        Component::ALL
            .iter()
            .map(|&c| {
                let own = c.columns().iter().filter(|s| !keys.contains(&s.name));
                (own.filter(|s| schema.field_with_name(s.name).is_ok()).count(), c)
            })
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map(|(_, c)| c)
    })
}

/// Encodes batches of several components as one Flight stream: a schema message (with the
/// component in its metadata) whenever the component changes, then the batch. The first
/// message carries `descriptor`.
#[derive(Default)]
pub struct MultiplexEncoder {
    last: Option<Component>,
    descriptor: Option<FlightDescriptor>,
}

impl MultiplexEncoder {
    pub fn new(descriptor: FlightDescriptor) -> Self {
        MultiplexEncoder { last: None, descriptor: Some(descriptor) }
    }

    /// The messages for one batch of `component`.
    pub fn encode(&mut self, component: Component, batch: &RecordBatch) -> arrow::error::Result<Vec<FlightData>> {
        let mut meta = batch.schema().metadata().clone();
        meta.insert(COMPONENT_KEY.to_string(), component.tag().to_string());
        let schema = Schema::new_with_metadata(batch.schema().fields().clone(), meta);
        let batch = batch.clone().with_schema(Arc::new(schema.clone()))?;
        let mut out = arrow_flight::utils::batches_to_flight_data(&schema, vec![batch])?;
        if self.last == Some(component) {
            out.remove(0);
        } else {
            self.last = Some(component);
        }
        if let (Some(d), Some(first)) = (self.descriptor.take(), out.first_mut()) {
            first.flight_descriptor = Some(d);
        }
        Ok(out)
    }
}

/// The schema message alone (for a stream whose schema the receiver must see first).
pub fn schema_message(schema: &Schema) -> FlightData {
    SchemaAsIpc::new(schema, &arrow::ipc::writer::IpcWriteOptions::default()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::v2::{VehiclePoseRecord, encode_all};

    fn pose_batch() -> RecordBatch {
        let r = VehiclePoseRecord {
            key: crate::io::v2::FrameKey { segment: "s".into(), timestamp_micros: 5 },
            world_from_vehicle: crate::scene::Transform::identity(),
        };
        encode_all([&r])
    }

    #[test]
    fn multiplexed_components_decode_in_order_and_garbage_is_one_rejection() {
        let batch = pose_batch();
        let mut enc = MultiplexEncoder::new(FlightDescriptor::new_path(vec!["frames".into()]));
        let mut msgs = enc.encode(Component::VehiclePose, &batch).unwrap();
        msgs.extend(enc.encode(Component::VehiclePose, &batch).unwrap());
        assert_eq!(msgs.len(), 3, "one schema, two batches");
        let mut bad = msgs[1].clone();
        bad.data_header = bytes::Bytes::from_static(b"\x01\x02garbage");
        msgs.insert(2, bad);
        let mut dec = MessageDecoder::default();
        let at = Location::file("flight://test");
        let out: Vec<_> = msgs.iter().map(|m| dec.decode(m, &at)).collect();
        assert!(matches!(out[0], Ok(Decoded::Nothing)));
        assert!(matches!(&out[1], Ok(Decoded::Batch(Component::VehiclePose, b)) if b.num_rows() == 1));
        assert!(matches!(&out[2], Err((RejectReason::Undecodable, _))));
        assert!(matches!(&out[3], Ok(Decoded::Batch(Component::VehiclePose, _))), "the stream goes on");
    }

    #[test]
    fn component_from_columns_when_nothing_names_it() {
        let batch = pose_batch();
        let plain = Schema::new(batch.schema().fields().clone());
        assert_eq!(component_of(&plain, None), Some(Component::VehiclePose));
        assert_eq!(component_of(&plain, Some(Component::Lidar)), Some(Component::Lidar), "the descriptor wins");
        let keys_only = plain.project(&[0, 1]).unwrap();
        assert_eq!(component_of(&keys_only, None), None);
    }
}
