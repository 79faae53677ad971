"""Values every layer agrees on, in the bottom module so that none of them imports a data set's
module for them."""

# The label of a point that has none (unlabeled, ignored class, padding). The readers write it,
# the losses skip it, the evaluators leave it out of every count.
IGNORE_LABEL = 255
