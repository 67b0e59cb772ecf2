"""Tasks: the kind of image (one bright pixel, a sub-pixel spot), each a package under this one."""
