"""The device farm: phones over adb, the on-device runner protocol, host measurement, the results store."""
