"""HTTP gateway and drawing playground in front of tritonserver, over `sketchygan_client` (docs/web.md)."""
