//! Typed access to a normalised batch ([`Cols`]) and the column builders of the writer
//! ([`TableBuilder`]). Both speak the declared types of `schema.rs` only; everything a
//! file may hold instead was converted by `normalize.rs` before this point.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder,
    Int8Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{ArrowPrimitiveType, Float64Type, Int8Type, Int32Type, Int64Type};

use super::schema::{ColType, Component};
use crate::error::{Error, Location, Result};
use crate::scene::{RangeImage, Transform};

/// A normalised batch with the location of its rows, for typed, error-reporting access.
pub struct Cols<'a> {
    batch: &'a RecordBatch,
    at: Location,
    /// Row of the batch's first row within the file, for messages.
    first_row: usize,
}

/// Converts a Waymo enum value; `from_value` is the enum's constructor.
pub trait WaymoEnum: Sized + Copy {
    fn from_value(v: i64) -> Option<Self>;
    fn expected() -> String;
}

macro_rules! impl_waymo_enum {
    ($($t:ty),*) => {$(
        impl WaymoEnum for $t {
            fn from_value(v: i64) -> Option<Self> { <$t>::from_value(v) }
            fn expected() -> String { <$t>::expected() }
        }
    )*};
}
impl_waymo_enum!(
    crate::scene::LaserName,
    crate::scene::CameraName,
    crate::scene::BoxType,
    crate::scene::DifficultyLevel,
    crate::scene::RollingShutterDirection,
    crate::scene::MapFeatureType
);

impl<'a> Cols<'a> {
    pub fn new(batch: &'a RecordBatch, at: Location, first_row: usize) -> Self {
        Cols { batch, at, first_row }
    }

    /// Whether the batch holds this column (it may have been left out of the projection).
    pub fn has(&self, name: &str) -> bool {
        self.batch.column_by_name(name).is_some()
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The location of one cell, for errors.
    pub fn at(&self, name: &str, row: usize) -> Location {
        self.at.clone().column(name).row(self.first_row + row)
    }

    fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        self.batch.column_by_name(name).ok_or_else(|| Error::MissingColumn {
            at: self.at.clone().column(name),
            expected: "a column that was not projected (scenetok bug: it was not requested)".into(),
        })
    }

    fn null(&self, name: &str, row: usize) -> Error {
        Error::invalid(self.at(name, row), "a value", "null")
    }

    pub fn opt_str(&self, name: &str, row: usize) -> Result<Option<&'a str>> {
        let c = self.column(name)?.as_string::<i32>();
        Ok((!c.is_null(row)).then(|| c.value(row)))
    }
    pub fn str(&self, name: &str, row: usize) -> Result<&'a str> {
        self.opt_str(name, row)?.ok_or_else(|| self.null(name, row))
    }

    pub fn opt_bin(&self, name: &str, row: usize) -> Result<Option<&'a [u8]>> {
        let c = self.column(name)?.as_binary::<i32>();
        Ok((!c.is_null(row)).then(|| c.value(row)))
    }
    pub fn bin(&self, name: &str, row: usize) -> Result<&'a [u8]> {
        self.opt_bin(name, row)?.ok_or_else(|| self.null(name, row))
    }

    pub fn opt_prim<T: ArrowPrimitiveType>(&self, name: &str, row: usize) -> Result<Option<T::Native>> {
        let c = self.column(name)?.as_primitive::<T>();
        Ok((!c.is_null(row)).then(|| c.value(row)))
    }
    pub fn prim<T: ArrowPrimitiveType>(&self, name: &str, row: usize) -> Result<T::Native> {
        self.opt_prim::<T>(name, row)?.ok_or_else(|| self.null(name, row))
    }
    pub fn f64(&self, name: &str, row: usize) -> Result<f64> {
        self.prim::<Float64Type>(name, row)
    }
    pub fn f64_or(&self, name: &str, row: usize, default: f64) -> Result<f64> {
        Ok(self.opt_prim::<Float64Type>(name, row)?.unwrap_or(default))
    }
    pub fn i64(&self, name: &str, row: usize) -> Result<i64> {
        self.prim::<Int64Type>(name, row)
    }

    /// A required enum value; unknown values are errors naming the accepted ones.
    pub fn enum_value<E: WaymoEnum>(&self, name: &str, row: usize) -> Result<E> {
        let v = self.prim::<Int8Type>(name, row)?;
        E::from_value(v as i64).ok_or_else(|| Error::invalid(self.at(name, row), E::expected(), v.to_string()))
    }
    /// An optional enum value: null reads as `default`.
    pub fn enum_or<E: WaymoEnum>(&self, name: &str, row: usize, default: E) -> Result<E> {
        match self.opt_prim::<Int8Type>(name, row)? {
            None => Ok(default),
            Some(v) => {
                E::from_value(v as i64).ok_or_else(|| Error::invalid(self.at(name, row), E::expected(), v.to_string()))
            }
        }
    }

    /// The values of one list cell, borrowed from the batch; `None` when null.
    pub fn list<T: ArrowPrimitiveType>(&self, name: &str, row: usize) -> Result<Option<&'a [T::Native]>> {
        let c = self.column(name)?.as_list::<i32>();
        if c.is_null(row) {
            return Ok(None);
        }
        let offsets = c.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let values = c.values().as_primitive::<T>();
        Ok(Some(&values.values()[start..end]))
    }
    pub fn list_bool(&self, name: &str, row: usize) -> Result<Option<Vec<bool>>> {
        let c = self.column(name)?.as_list::<i32>();
        if c.is_null(row) {
            return Ok(None);
        }
        let v = c.value(row);
        Ok(Some(v.as_boolean().iter().map(|b| b.unwrap_or(false)).collect()))
    }

    /// A row-major 4×4 transform; `None` when null.
    pub fn opt_transform(&self, name: &str, row: usize) -> Result<Option<Transform>> {
        let c = self.column(name)?.as_fixed_size_list();
        if c.is_null(row) {
            return Ok(None);
        }
        let cell = c.value(row);
        let v = cell.as_primitive::<Float64Type>();
        let mut m = [0.0f64; 16];
        for (i, x) in m.iter_mut().enumerate() {
            *x = v.value(i);
        }
        if m.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(self.at(name, row), "16 finite numbers", "a transform with NaN or inf"));
        }
        Ok(Some(Transform::from_row_major(&m)))
    }
    pub fn transform(&self, name: &str, row: usize) -> Result<Transform> {
        self.opt_transform(name, row)?.ok_or_else(|| self.null(name, row))
    }

    /// A range image from its `…values` and `…shape` columns (`prefix` ends before `.values`),
    /// checking `len(values) == H*W*C`; `None` when the values are null.
    pub fn range_image<T: ArrowPrimitiveType>(&self, prefix: &str, row: usize) -> Result<Option<RangeImage<T::Native>>>
    where
        T::Native: Default,
    {
        let values_name = format!("{prefix}.values");
        let shape_name = format!("{prefix}.shape");
        let Some(values) = self.list::<T>(&values_name, row)? else {
            return Ok(None);
        };
        let shape_col = self.column(&shape_name)?.as_fixed_size_list();
        if shape_col.is_null(row) {
            return Err(Error::invalid(self.at(&shape_name, row), "a shape [H, W, C] beside the values", "null"));
        }
        let cell = shape_col.value(row);
        let dims = cell.as_primitive::<Int32Type>();
        let mut shape = [0usize; 3];
        for (i, d) in shape.iter_mut().enumerate() {
            let v = dims.value(i);
            *d = usize::try_from(v)
                .map_err(|_| Error::invalid(self.at(&shape_name, row), "non-negative dimensions", format!("{v}")))?;
        }
        RangeImage::new(shape, values.to_vec())
            .map(Some)
            .map_err(|msg| Error::invalid(self.at(&values_name, row), format!("H·W·C values for shape {shape:?}"), msg))
    }
}

enum ColBuilder {
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    ListI8(ListBuilder<Int8Builder>),
    ListI32(ListBuilder<Int32Builder>),
    ListI64(ListBuilder<Int64Builder>),
    ListF32(ListBuilder<Float32Builder>),
    ListF64(ListBuilder<Float64Builder>),
    ListBool(ListBuilder<BooleanBuilder>),
    Transform(FixedSizeListBuilder<Float64Builder>),
    Shape(FixedSizeListBuilder<Int32Builder>),
}

impl ColBuilder {
    fn new(ty: ColType) -> Self {
        match ty {
            ColType::Str => ColBuilder::Str(StringBuilder::new()),
            ColType::Bin => ColBuilder::Bin(BinaryBuilder::new()),
            ColType::Bool => ColBuilder::Bool(BooleanBuilder::new()),
            ColType::I8 => ColBuilder::I8(Int8Builder::new()),
            ColType::I32 => ColBuilder::I32(Int32Builder::new()),
            ColType::I64 => ColBuilder::I64(Int64Builder::new()),
            ColType::F32 => ColBuilder::F32(Float32Builder::new()),
            ColType::F64 => ColBuilder::F64(Float64Builder::new()),
            ColType::ListI8 => ColBuilder::ListI8(ListBuilder::new(Int8Builder::new())),
            ColType::ListI32 => ColBuilder::ListI32(ListBuilder::new(Int32Builder::new())),
            ColType::ListI64 => ColBuilder::ListI64(ListBuilder::new(Int64Builder::new())),
            ColType::ListF32 => ColBuilder::ListF32(ListBuilder::new(Float32Builder::new())),
            ColType::ListF64 => ColBuilder::ListF64(ListBuilder::new(Float64Builder::new())),
            ColType::ListBool => ColBuilder::ListBool(ListBuilder::new(BooleanBuilder::new())),
            ColType::Transform => ColBuilder::Transform(FixedSizeListBuilder::new(Float64Builder::new(), 16)),
            ColType::Shape => ColBuilder::Shape(FixedSizeListBuilder::new(Int32Builder::new(), 3)),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColBuilder::Str(b) => b.append_null(),
            ColBuilder::Bin(b) => b.append_null(),
            ColBuilder::Bool(b) => b.append_null(),
            ColBuilder::I8(b) => b.append_null(),
            ColBuilder::I32(b) => b.append_null(),
            ColBuilder::I64(b) => b.append_null(),
            ColBuilder::F32(b) => b.append_null(),
            ColBuilder::F64(b) => b.append_null(),
            ColBuilder::ListI8(b) => b.append_null(),
            ColBuilder::ListI32(b) => b.append_null(),
            ColBuilder::ListI64(b) => b.append_null(),
            ColBuilder::ListF32(b) => b.append_null(),
            ColBuilder::ListF64(b) => b.append_null(),
            ColBuilder::ListBool(b) => b.append_null(),
            ColBuilder::Transform(b) => {
                b.values().append_nulls(16);
                b.append(false)
            }
            ColBuilder::Shape(b) => {
                b.values().append_nulls(3);
                b.append(false)
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        use std::sync::Arc;
        match self {
            ColBuilder::Str(b) => Arc::new(b.finish()),
            ColBuilder::Bin(b) => Arc::new(b.finish()),
            ColBuilder::Bool(b) => Arc::new(b.finish()),
            ColBuilder::I8(b) => Arc::new(b.finish()),
            ColBuilder::I32(b) => Arc::new(b.finish()),
            ColBuilder::I64(b) => Arc::new(b.finish()),
            ColBuilder::F32(b) => Arc::new(b.finish()),
            ColBuilder::F64(b) => Arc::new(b.finish()),
            ColBuilder::ListI8(b) => Arc::new(b.finish()),
            ColBuilder::ListI32(b) => Arc::new(b.finish()),
            ColBuilder::ListI64(b) => Arc::new(b.finish()),
            ColBuilder::ListF32(b) => Arc::new(b.finish()),
            ColBuilder::ListF64(b) => Arc::new(b.finish()),
            ColBuilder::ListBool(b) => Arc::new(b.finish()),
            ColBuilder::Transform(b) => Arc::new(b.finish()),
            ColBuilder::Shape(b) => Arc::new(b.finish()),
        }
    }
}

/// Builds one component's record batch in the declared schema, a row at a time. Columns
/// not set in a row are written as null.
pub struct TableBuilder {
    component: Component,
    builders: Vec<ColBuilder>,
    set: Vec<bool>,
    rows: usize,
}

macro_rules! setter {
    ($fn:ident, $variant:ident, $t:ty, |$b:ident, $v:ident| $body:expr) => {
        pub fn $fn(&mut self, name: &str, $v: $t) -> &mut Self {
            let i = self.index(name);
            match &mut self.builders[i] {
                ColBuilder::$variant($b) => $body,
                _ => panic!("scenetok bug: column `{name}` is not {}", stringify!($variant)),
            }
            self
        }
    };
}

impl TableBuilder {
    pub fn new(component: Component) -> Self {
        let builders = component.columns().iter().map(|c| ColBuilder::new(c.ty)).collect();
        TableBuilder { component, builders, set: vec![false; component.columns().len()], rows: 0 }
    }

    fn index(&mut self, name: &str) -> usize {
        let i = self
            .component
            .columns()
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("scenetok bug: `{name}` is not a `{}` column", self.component));
        assert!(!self.set[i], "scenetok bug: `{name}` set twice in one row");
        self.set[i] = true;
        i
    }

    setter!(str, Str, &str, |b, v| b.append_value(v));
    setter!(bin, Bin, &[u8], |b, v| b.append_value(v));
    setter!(i8, I8, i8, |b, v| b.append_value(v));
    setter!(i32, I32, i32, |b, v| b.append_value(v));
    setter!(i64, I64, i64, |b, v| b.append_value(v));
    setter!(f32, F32, f32, |b, v| b.append_value(v));
    setter!(f64, F64, f64, |b, v| b.append_value(v));
    setter!(list_i8, ListI8, &[i8], |b, v| {
        b.values().append_slice(v);
        b.append(true)
    });
    setter!(list_i32, ListI32, &[i32], |b, v| {
        b.values().append_slice(v);
        b.append(true)
    });
    setter!(list_i64, ListI64, &[i64], |b, v| {
        b.values().append_slice(v);
        b.append(true)
    });
    setter!(list_f32, ListF32, &[f32], |b, v| {
        b.values().append_slice(v);
        b.append(true)
    });
    setter!(list_f64, ListF64, &[f64], |b, v| {
        b.values().append_slice(v);
        b.append(true)
    });
    setter!(list_bool, ListBool, &[bool], |b, v| {
        for x in v {
            b.values().append_value(*x);
        }
        b.append(true)
    });
    setter!(transform, Transform, &Transform, |b, v| {
        b.values().append_slice(&v.to_row_major());
        b.append(true)
    });
    setter!(shape, Shape, [usize; 3], |b, v| {
        for d in v {
            b.values().append_value(d as i32);
        }
        b.append(true)
    });

    /// Writes a range image into its `prefix.values` / `prefix.shape` pair.
    pub fn range_image_f32(&mut self, prefix: &str, ri: &RangeImage<f32>) -> &mut Self {
        self.list_f32(&format!("{prefix}.values"), &ri.values).shape(&format!("{prefix}.shape"), ri.shape())
    }
    pub fn range_image_i32(&mut self, prefix: &str, ri: &RangeImage<i32>) -> &mut Self {
        self.list_i32(&format!("{prefix}.values"), &ri.values).shape(&format!("{prefix}.shape"), ri.shape())
    }

    /// Closes the current row: every column not set gets a null.
    pub fn end_row(&mut self) {
        for (i, was_set) in self.set.iter_mut().enumerate() {
            if !*was_set {
                self.builders[i].append_null();
            }
            *was_set = false;
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The batch so far, in the declared schema; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        RecordBatch::try_new(self.component.schema(), columns)
            .unwrap_or_else(|e| panic!("scenetok bug: builders disagree with the `{}` schema: {e}", self.component))
    }
}

/// `f32` columns for velocities; re-exported for the component codecs.
pub use arrow::datatypes::Float32Type as F32;
pub use arrow::datatypes::Float64Type as F64;
pub use arrow::datatypes::Int8Type as I8;
pub use arrow::datatypes::Int32Type as I32;
pub use arrow::datatypes::Int64Type as I64;
