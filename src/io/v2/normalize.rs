//! The tolerant reader's core (docs/formats.md#tolerant-reading): whatever a file holds, convert the
//! columns asked for to their declared types, or say exactly why not.
//!
//! Accepted: columns in any order with extras ignored; f32 or f64; any integer width;
//! List, LargeList or FixedSizeList; Utf8, LargeUtf8, Utf8View or dictionary-encoded
//! strings; enum columns as integers or as names ("FRONT", "TYPE_VEHICLE").

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::FormatOptions;

use super::schema::{ColumnSpec, Component};
use crate::error::{Error, Location, Result};

/// A difference between a file's schema and the declared one that the reader tolerated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deviation {
    pub column: String,
    pub declared: String,
    pub found: String,
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: declared {}, found {}", self.column, self.declared, self.found)
    }
}

/// Compares a file schema with the declared one: type differences (tolerated), optional
/// columns that are absent, and extra columns (ignored). Missing required columns are
/// not deviations but errors, reported by [`check_required`].
pub fn deviations(component: Component, file_schema: &Schema) -> Vec<Deviation> {
    let mut out = Vec::new();
    for spec in component.columns() {
        let declared = spec.ty.data_type();
        match file_schema.field_with_name(spec.name) {
            Ok(f) if !same_type(f.data_type(), &declared) => out.push(Deviation {
                column: spec.name.to_string(),
                declared: type_name(&declared),
                found: type_name(f.data_type()),
            }),
            Ok(_) => {}
            Err(_) if !spec.required => out.push(Deviation {
                column: spec.name.to_string(),
                declared: type_name(&declared),
                found: "absent (read as null)".to_string(),
            }),
            Err(_) => {}
        }
    }
    for f in file_schema.fields() {
        if component.column(f.name()).is_none() {
            out.push(Deviation {
                column: f.name().clone(),
                declared: "not declared".to_string(),
                found: format!("{} (ignored)", type_name(f.data_type())),
            });
        }
    }
    out
}

/// Fails on the first required column the file lacks.
pub fn check_required(component: Component, file_schema: &Schema, file: &Location) -> Result<()> {
    for spec in component.columns().iter().filter(|s| s.required) {
        if file_schema.field_with_name(spec.name).is_err() {
            return Err(Error::MissingColumn {
                at: file.clone().column(spec.name),
                expected: format!("{} in a `{}` file", type_name(&spec.ty.data_type()), component.tag()),
            });
        }
    }
    Ok(())
}

/// Converts the columns `wanted` of `batch` to their declared types, in the order given.
/// Absent optional columns become all-null columns; absent required ones are an error.
pub fn normalize(
    batch: &RecordBatch,
    component: Component,
    wanted: &[&'static ColumnSpec],
    at: &Location,
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(wanted.len());
    let mut columns = Vec::with_capacity(wanted.len());
    for spec in wanted {
        let declared = spec.ty.data_type();
        let col_at = at.clone().column(spec.name);
        let column = match batch.column_by_name(spec.name) {
            Some(c) => convert(c, spec, &declared, &col_at)?,
            None if spec.required => {
                return Err(Error::MissingColumn {
                    at: col_at,
                    expected: format!("{} in a `{}` file", type_name(&declared), component.tag()),
                });
            }
            None => new_null_array(&declared, batch.num_rows()),
        };
        // The column's own type: equal to the declared one up to the names and nullability of
        // list children (pyarrow ≥ 13 names them `element`, arrow-rs `item`).
        fields.push(Field::new(spec.name, column.data_type().clone(), true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Arrow { at: at.clone(), cause: e })
}

fn convert(column: &ArrayRef, spec: &ColumnSpec, declared: &DataType, at: &Location) -> Result<ArrayRef> {
    if same_type(column.data_type(), declared) {
        return Ok(column.clone());
    }
    if let Some(kind) = spec.enum_kind
        && is_string_like(column.data_type())
    {
        return enum_names_to_values(column, kind, at);
    }
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    cast_with_options(column, declared, &options).map_err(|e| {
        Error::invalid(
            at.clone(),
            type_name(declared),
            format!("{} that does not convert ({e})", type_name(column.data_type())),
        )
    })
}

fn enum_names_to_values(column: &ArrayRef, kind: super::schema::EnumKind, at: &Location) -> Result<ArrayRef> {
    let options = CastOptions { safe: false, format_options: FormatOptions::default() };
    let strings = cast_with_options(column, &DataType::Utf8, &options)
        .map_err(|e| Error::invalid(at.clone(), kind.expected(), format!("unreadable names ({e})")))?;
    let strings = strings.as_string::<i32>();
    let mut out = Vec::with_capacity(strings.len());
    for (row, s) in strings.iter().enumerate() {
        match s {
            None => out.push(None),
            Some(s) => match kind.parse_name(s).and_then(|v| i8::try_from(v).ok()) {
                Some(v) => out.push(Some(v)),
                None => {
                    return Err(Error::invalid(
                        at.clone().row(row),
                        format!("a {}", kind.expected()),
                        format!("{s:?}"),
                    ));
                }
            },
        }
    }
    Ok(Arc::new(Int8Array::from(out)))
}

fn is_string_like(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string_like(v),
        _ => false,
    }
}

/// Types equal up to field names and nullability of list items.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y)) => same_type(x.data_type(), y.data_type()),
        (DataType::FixedSizeList(x, n), DataType::FixedSizeList(y, m)) => {
            n == m && same_type(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

/// A short, pyarrow-like type name for messages.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary => "binary".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::LargeList(f) => format!("large_list<{}>", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => format!("fixed_size_list<{}>[{n}]", type_name(f.data_type())),
        DataType::Dictionary(k, v) => format!("dictionary<{}, {}>", type_name(k), type_name(v)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        DictionaryArray, FixedSizeListBuilder, Float32Builder, Int32Array, Int64Array, LargeListArray, StringArray,
    };
    use arrow::datatypes::{Float32Type, Int32Type};

    fn at() -> Location {
        Location::file("test.parquet")
    }

    #[test]
    fn f32_fixed_list_transform_becomes_f64() {
        let mut b = FixedSizeListBuilder::new(Float32Builder::new(), 16);
        for i in 0..16 {
            b.values().append_value(i as f32);
        }
        b.append(true);
        let seg: ArrayRef = Arc::new(StringArray::from(vec!["s"]));
        let ts: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let tr: ArrayRef = Arc::new(b.finish());
        let batch = RecordBatch::try_from_iter([
            ("key.segment_context_name", seg),
            ("key.frame_timestamp_micros", ts),
            ("[VehiclePoseComponent].world_from_vehicle.transform", tr),
            ("index", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        ])
        .unwrap();
        let wanted: Vec<_> = Component::VehiclePose.columns().iter().collect();
        let out = normalize(&batch, Component::VehiclePose, &wanted, &at()).unwrap();
        assert_eq!(out.column(2).data_type(), &super::super::schema::ColType::Transform.data_type());
        let devs = deviations(Component::VehiclePose, &batch.schema());
        assert_eq!(devs.len(), 2, "{devs:?}");
        assert!(devs[0].found.contains("fixed_size_list<float>[16]"));
        assert!(devs[1].column == "index");
    }

    #[test]
    fn enum_names_and_dictionaries_and_large_lists() {
        let names: DictionaryArray<Int32Type> = vec!["TOP", "FRONT", "REAR"].into_iter().collect();
        let seg: DictionaryArray<Int32Type> = vec!["a", "a", "a"].into_iter().collect();
        let values = LargeListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0)]),
            Some(vec![Some(2.0)]),
            None,
        ]);
        let batch = RecordBatch::try_from_iter([
            ("key.segment_context_name", Arc::new(seg) as ArrayRef),
            ("key.laser_name", Arc::new(names) as ArrayRef),
            ("[LiDARComponent].range_image_return1.values", Arc::new(values) as ArrayRef),
            ("key.frame_timestamp_micros", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
        ])
        .unwrap();
        let c = Component::Lidar;
        let wanted = vec![
            c.column("key.segment_context_name").unwrap(),
            c.column("key.frame_timestamp_micros").unwrap(),
            c.column("key.laser_name").unwrap(),
            c.column("[LiDARComponent].range_image_return1.values").unwrap(),
            c.column("[LiDARComponent].range_image_return2.values").unwrap(),
        ];
        let out = normalize(&batch, c, &wanted, &at()).unwrap();
        let lasers = out.column(2).as_primitive::<arrow::datatypes::Int8Type>();
        assert_eq!(lasers.values().to_vec(), vec![1, 2, 5]);
        assert_eq!(out.column(4).null_count(), 3);
    }

    #[test]
    fn unknown_enum_name_and_missing_required_column_are_errors() {
        let batch = RecordBatch::try_from_iter([
            ("key.segment_context_name", Arc::new(StringArray::from(vec!["s"])) as ArrayRef),
            ("key.laser_name", Arc::new(StringArray::from(vec!["ROOF"])) as ArrayRef),
        ])
        .unwrap();
        let c = Component::Lidar;
        let wanted = vec![c.column("key.laser_name").unwrap()];
        let err = normalize(&batch, c, &wanted, &at()).unwrap_err().to_string();
        assert!(err.contains("key.laser_name") && err.contains("ROOF") && err.contains("1=TOP"), "{err}");
        let wanted = vec![c.column("[LiDARComponent].range_image_return1.shape").unwrap()];
        let err = normalize(&batch, c, &wanted, &at()).unwrap_err().to_string();
        assert!(err.contains("missing required column") && err.contains("range_image_return1.shape"), "{err}");
    }
}
