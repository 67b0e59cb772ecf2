"""The many-emitters task (data=emitters): sub-pixel Gaussian spots at a density, as a camera records them."""
