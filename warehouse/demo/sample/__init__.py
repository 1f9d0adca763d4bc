"""Sample data: every source's exports for a county's townships, calibrated to known figures.

`generate.generate_sample` writes the directory described in docs/sources.md;
`calibration.load_profile` reads calibration profiles (docs/calibration.md).
"""
