"""The book's figure helpers (maze drawing, value maps, learning curves), kept in the package the way
d2l keeps its plotting helpers in its library, so that a chapter page shows the idea and a one-line
call instead of the plotting code. Nothing in training imports this subpackage."""
