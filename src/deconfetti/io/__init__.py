"""Reading and patching tclean products: `discover` finds them by name, `casa` and `fits`
each read and patch one format, `products` turns any of them into checked `Products`."""
