// sk_requant: y = clamp((acc * mult + 2^(shift-1)) >>> shift, 0, 127), 3-cycle pipeline
`default_nettype none
`timescale 1ns / 1ps

// docs/golden_model.md section 4: mult in [2^14, 2^15), shift in 1..62, the
// product formed in 64 bits, arithmetic (floor) shift, so round-half-up.
module sk_requant #(
    parameter ACC_W = 32   // signed accumulator bits (<= 48)
) (
    input  wire             clk,
    input  wire             in_valid,
    input  wire [ACC_W-1:0] acc,     // signed accumulator including bias
    input  wire [15:0]      mult,    // requant_mult (positive, < 2^15)
    input  wire [5:0]       shift,   // requant_shift, 1..62
    output wire             out_valid,
    output wire [6:0]       y        // requantised activation 0..127 (valid 3 cycles after acc)
);

reg               v1_reg = 1'b0, v2_reg = 1'b0, v3_reg = 1'b0;
reg signed [63:0] prod_reg = 0;
reg signed [63:0] sum_reg = 0;
reg [5:0]         sh1_reg = 0, sh2_reg = 0;
reg [6:0]         y_reg = 0;

wire signed [ACC_W+16:0] prod = $signed(acc) * $signed({1'b0, mult});
wire signed [63:0]       q = sum_reg >>> sh2_reg;

always @(posedge clk) begin
    // stage 1: multiply
    v1_reg   <= in_valid;
    prod_reg <= {{(64-ACC_W-17){prod[ACC_W+16]}}, prod};
    sh1_reg  <= shift;
    // stage 2: add the rounding constant 2^(shift-1)
    v2_reg   <= v1_reg;
    sum_reg  <= prod_reg + (64'sd1 <<< (sh1_reg - 6'd1));
    sh2_reg  <= sh1_reg;
    // stage 3: arithmetic shift and clamp to 0..127
    v3_reg   <= v2_reg;
    if (q < 0) begin
        y_reg <= 7'd0;
    end else if (q > 64'sd127) begin
        y_reg <= 7'd127;
    end else begin
        y_reg <= q[6:0];
    end
end

assign out_valid = v3_reg;
assign y = y_reg;

endmodule

`resetall
