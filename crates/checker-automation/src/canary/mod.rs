//! The canary lead: a synthetic, recognisable test lead walked through the real stack.

/// The tag (Mautic tag, Marketo/HubSpot field value) that marks canary leads, so reports exclude
/// them and cleanup finds them.
pub const TAG: &str = "funnelgate-canary";
