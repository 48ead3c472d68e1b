"""Few-shot defaults, in a module light enough for the CLI to import at start-up."""

#: Validation-free setting: Tip-Adapter's published training-free defaults, used for both adapters.
DEFAULT_ALPHA = 1.0
DEFAULT_BETA = 5.5
#: The standard protocol: shots per class and seeds.
DEFAULT_SHOTS = (1, 2, 4, 8, 16)
DEFAULT_SEEDS = (1, 2, 3)
#: Validation images per class: min(K, VAL_PER_CLASS).
VAL_PER_CLASS = 4
#: Augmented views averaged per support image.
DEFAULT_VIEWS = 10
#: Points per axis of the refined grid.
DEFAULT_REFINE = 7
