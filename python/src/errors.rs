//! scenetok's errors as Python exceptions. The classes live in `scenetok/errors.py` (one
//! hierarchy, documented where Python users look); the message is the library error's text,
//! the same words the command prints after `error:`.

use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

use scenetok::Error;

/// Which of `scenetok.errors`' classes an error becomes.
#[derive(Clone, Copy)]
pub enum Kind {
    /// The input's content or an argument is not what was expected (a `ValueError`).
    Invalid,
    /// A file that is not there (a `FileNotFoundError`).
    NotFound,
    /// Any other refusal of the file system (an `OSError`).
    Io,
    /// A model, its weights or the device refused (a `RuntimeError`).
    Model,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Invalid => "InvalidInputError",
            Kind::NotFound => "InputNotFoundError",
            Kind::Io => "ScenetokIOError",
            Kind::Model => "ModelError",
        }
    }
}

/// A Python exception of `kind` with `message`.
pub fn raise(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        let made = py
            .import("scenetok.errors")
            .and_then(|m| m.getattr(kind.class_name()))
            .and_then(|class| class.call1((message.clone(),)));
        match made {
            Ok(exc) => PyErr::from_value(exc),
            // The package is broken (its errors module gone): still an exception, never a crash.
            Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
        }
    })
}

/// Bad input or a bad argument.
pub fn invalid(message: impl Into<String>) -> PyErr {
    raise(Kind::Invalid, message)
}

/// The library's error as the exception that says the same.
pub fn from_lib(e: Error) -> PyErr {
    let kind = match &e {
        Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => Kind::NotFound,
        Error::Io { .. } => Kind::Io,
        Error::NotFound { .. } => Kind::NotFound,
        Error::Model { .. } | Error::Device { .. } => Kind::Model,
        Error::Parquet { .. }
        | Error::Arrow { .. }
        | Error::MissingColumn { .. }
        | Error::Invalid { .. }
        | Error::Decode { .. } => Kind::Invalid,
    };
    raise(kind, e.to_string())
}

/// `?` on library results inside the bindings.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(from_lib)
    }
}
