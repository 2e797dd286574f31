//! Geometry: range image ⇄ points (reference/waymo.md §2.2), global-shutter camera
//! projection (§2.3), boxes.
