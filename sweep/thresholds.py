"""Every threshold the metrics use, defined once (metrics, alignment, models and the
analysis' captions import them from here)."""

ACTIVE = 1e-3  # |x| above this is an active feature, in the truth and in X_hat alike
RECOVERED = 0.9  # a feature is recovered when its matched cosine exceeds this
DEAD = 1e-8  # a latent whose |code| never exceeds this on the test samples is dead
REPRESENTED = 0.5  # a trained model represents feature i when ||W_i|| exceeds this
UNREPRESENTED = 1e-3  # default represented_tol: columns shorter than this x the
# longest are not given to recovery methods (recovered as 0, never normalised)
